#ifndef SEGSERVE_TOOLS_TLS_FLAGS_H_
#define SEGSERVE_TOOLS_TLS_FLAGS_H_

#include "absl/status/status.h"
#include "client/client.h"

namespace segserve {

// Applies the command-line tools' --tls_* flags (--tls, --tls_ca_file,
// --tls_cert_file, --tls_key_file, --tls_server_name) to `options`: TLS when
// any is set, plaintext otherwise. INVALID_ARGUMENT when a file cannot be
// read.
absl::Status ApplyTlsFlags(ClientOptions* options);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_TLS_FLAGS_H_
