#ifndef SEGSERVE_SERVER_TLS_CREDENTIALS_H_
#define SEGSERVE_SERVER_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"

namespace segserve {

// The gRPC port's TLS files (PEM).
struct TlsFiles {
  std::string cert_file;  // The server's certificate chain.
  std::string key_file;   // Its private key.
  // Set: clients must present a certificate signed by these CAs (mTLS).
  std::string client_ca_file;
  // How often the files are re-read: a rotated certificate (a Kubernetes
  // secret renewed by cert-manager) is served to new handshakes without a
  // restart, and open connections keep going.
  absl::Duration refresh = absl::Seconds(60);
};

// TLS server credentials that watch `files`. Checks first that each file
// can be read and looks like PEM, so that a wrong path fails at start with
// its name rather than at the first handshake; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const TlsFiles& files);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_TLS_CREDENTIALS_H_
