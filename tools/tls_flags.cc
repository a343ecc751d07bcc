#include "tools/tls_flags.h"

#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/tls.h"
#include "common/status_macros.h"

ABSL_FLAG(bool, tls, false,
          "Connect with TLS, verifying the server with the system's CAs "
          "(implied by the other --tls_* flags).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates to verify the server with (TLS).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate, for servers that require one (mTLS).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM key of --tls_cert_file.");
ABSL_FLAG(std::string, bearer_token_file, "",
          "File whose first line is the bearer token to send (for a server "
          "with --auth_tokens_file).");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry, when it differs from "
          "the target's host.");

namespace segserve {

absl::Status ApplyTlsFlags(ClientOptions* options) {
  if (const std::string path = absl::GetFlag(FLAGS_bearer_token_file);
      !path.empty()) {
    std::ifstream in(path);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--bearer_token_file ", path, " cannot be read or is empty"));
    }
    options->bearer_token = token;
  }
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
  SEGSERVE_ASSIGN_OR_RETURN(options->credentials, TlsChannelCredentials(files));
  options->tls_server_name = server_name;
  return absl::OkStatus();
}

}  // namespace segserve
