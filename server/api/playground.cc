#include "server/api/playground.h"

#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/client_text.h"
#include "server/api/embedded_file.h"
#include "server/api/json_util.h"

namespace segserve {

extern const EmbeddedFile kPlaygroundFiles[];

namespace {

constexpr char kPrefix[] = "/playground/";

const char* ContentType(const std::string& name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

const EmbeddedFile* FindFile(const std::string& name) {
  for (const EmbeddedFile* file = kPlaygroundFiles; file->name != nullptr;
       ++file) {
    if (name == file->name) return file;
  }
  return nullptr;
}

HttpResponse Error(int code, const std::string& message) {
  HttpResponse response;
  response.code = code;
  response.body = ErrorJson(message);
  return response;
}

}  // namespace

std::optional<HttpResponse> PlaygroundResponse(const HttpRequest& request) {
  std::string name;
  if (request.path == "/") {
    name = "index.html";
  } else if (absl::StartsWith(request.path, kPrefix)) {
    name = request.path.substr(std::strlen(kPrefix));
  } else {
    return std::nullopt;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse refused =
        Error(405, absl::StrCat(request.method, " is not allowed on ",
                                QuoteClientText(request.path), "; send GET"));
    refused.headers.emplace_back("Allow", "GET, HEAD");
    return refused;
  }
  const EmbeddedFile* file = FindFile(name);
  if (file == nullptr) {
    return Error(
        404, absl::StrCat("the playground has no file ", QuoteClientText(name),
                          "; its page is at /"));
  }
  HttpResponse response;
  response.content_type = ContentType(name);
  response.body.assign(reinterpret_cast<const char*>(file->data), file->size);
  // The page runs its own files only and talks to this server alone.
  response.headers.emplace_back(
      "Content-Security-Policy",
      "default-src 'self'; img-src 'self' data: blob:; "
      "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

}  // namespace segserve
