#include "tools/tls_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "client/tls.h"

ABSL_FLAG(bool, tls, false,
          "Connect with TLS, verifying the server with the system's CAs "
          "(implied by the other --tls_* flags).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates to verify the server with (TLS).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate, for servers that require one (mTLS).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry, when it differs from "
          "the target's host.");

namespace segserve {

absl::Status ApplyTlsFlags(ClientOptions* options) {
  TlsClientFiles files;
  files.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  files.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  files.key_file = absl::GetFlag(FLAGS_tls_key_file);
  const std::string server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!absl::GetFlag(FLAGS_tls) && files.ca_file.empty() &&
      files.cert_file.empty() && files.key_file.empty() &&
      server_name.empty()) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      TlsChannelCredentials(files);
  if (!credentials.ok()) return credentials.status();
  options->credentials = *std::move(credentials);
  options->tls_server_name = server_name;
  return absl::OkStatus();
}

}  // namespace segserve
