#ifndef SEGSERVE_CLIENT_TLS_H_
#define SEGSERVE_CLIENT_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"

namespace segserve {

// PEM files of a TLS client.
struct TlsClientFiles {
  std::string ca_file;    // CAs to verify the server with; empty: system's.
  std::string cert_file;  // With key_file: a client certificate (mTLS).
  std::string key_file;
};

// Channel credentials for ClientOptions::credentials, from `files`.
// INVALID_ARGUMENT naming the file when one cannot be read, or when only one
// of cert_file and key_file is given.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const TlsClientFiles& files);

}  // namespace segserve

#endif  // SEGSERVE_CLIENT_TLS_H_
