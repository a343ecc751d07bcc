#ifndef SEGSERVE_TOOLS_TLS_FLAGS_H_
#define SEGSERVE_TOOLS_TLS_FLAGS_H_

#include "absl/status/status.h"
#include "client/client.h"

namespace segserve {

// Applies the command-line tools' security flags to `options`: the --tls_*
// flags (--tls, --tls_ca_file, --tls_cert_file, --tls_key_file,
// --tls_server_name; TLS when any is set, plaintext otherwise) and
// --bearer_token_file. INVALID_ARGUMENT when a file cannot be read.
absl::Status ApplyTlsFlags(ClientOptions* options);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_TLS_FLAGS_H_
