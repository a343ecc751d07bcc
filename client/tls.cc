#include "client/tls.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace segserve {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the TLS ", what, " file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const TlsClientFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate needs both its certificate and its key "
        "file");
  }
  grpc::SslCredentialsOptions options;
  if (!files.ca_file.empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(options.pem_root_certs,
                              ReadPem(files.ca_file, "CA"));
  }
  if (!files.cert_file.empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(options.pem_cert_chain,
                              ReadPem(files.cert_file, "certificate"));
    SEGSERVE_ASSIGN_OR_RETURN(options.pem_private_key,
                              ReadPem(files.key_file, "key"));
  }
  return grpc::SslCredentials(options);
}

}  // namespace segserve
