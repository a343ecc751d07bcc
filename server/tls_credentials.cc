#include "server/tls_credentials.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace segserve {
namespace {

absl::Status CheckPemFile(const std::string& flag, const std::string& path,
                          absl::string_view what) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " ", path, " cannot be read; give a PEM ", what, " file"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " ", path, " is not PEM (no -----BEGIN line); give a PEM ",
        what, " file"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const TlsFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert_file and --tls_key_file");
  }
  SEGSERVE_RETURN_IF_ERROR(
      CheckPemFile("tls_cert_file", files.cert_file, "certificate"));
  SEGSERVE_RETURN_IF_ERROR(
      CheckPemFile("tls_key_file", files.key_file, "private key"));
  if (!files.client_ca_file.empty()) {
    SEGSERVE_RETURN_IF_ERROR(CheckPemFile(
        "tls_client_ca_file", files.client_ca_file, "CA certificate"));
  }
  const auto refresh_s = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(files.refresh)));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key_file, files.cert_file, files.client_ca_file, refresh_s);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!files.client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(options);
  if (credentials == nullptr) {
    return absl::InvalidArgumentError(
        "gRPC refused the TLS options; check the certificate and key files");
  }
  return credentials;
}

}  // namespace segserve
