#include "server/service/token_authorizer.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace segserve {
namespace {

constexpr size_t kMinTokenLength = 16;

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char differ = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    differ |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return differ == 0;
}

bool IsTokenChar(char c) { return c > ' ' && c < 127; }

}  // namespace

const char* RightName(Right right) {
  switch (right) {
    case Right::kInference:
      return "inference";
    case Right::kMetadata:
      return "metadata";
    case Right::kAdmin:
      return "admin";
  }
  return "admin";
}

absl::StatusOr<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::FromFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_tokens_file ", path, " cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return FromText(text.str(), path);
}

absl::StatusOr<std::unique_ptr<TokenAuthorizer>> TokenAuthorizer::FromText(
    absl::string_view text, absl::string_view source) {
  std::vector<Token> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto error = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_number, ": ", why,
          "; each line is '<token> <right>[,<right>...]' with rights "
          "inference, metadata, admin or all"));
    };
    if (fields.size() != 2) return error("expected a token and its rights");
    Token token;
    token.secret = std::string(fields[0]);
    if (token.secret.size() < kMinTokenLength) {
      return error(absl::StrCat("the token is shorter than ", kMinTokenLength,
                                " characters"));
    }
    for (char c : token.secret) {
      if (!IsTokenChar(c)) return error("the token has a non-printable byte");
    }
    for (absl::string_view right : absl::StrSplit(fields[1], ',')) {
      if (right == "all") {
        for (bool& r : token.rights) r = true;
      } else if (right == "inference") {
        token.rights[int(Right::kInference)] = true;
      } else if (right == "metadata") {
        token.rights[int(Right::kMetadata)] = true;
      } else if (right == "admin") {
        token.rights[int(Right::kAdmin)] = true;
      } else {
        return error(absl::StrCat("unknown right '", right, "'"));
      }
    }
    tokens.push_back(std::move(token));
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     " lists no token; an empty file would lock every "
                     "client out"));
  }
  return std::unique_ptr<TokenAuthorizer>(
      new TokenAuthorizer(std::move(tokens)));
}

absl::Status TokenAuthorizer::Check(absl::string_view authorization,
                                    Right right) const {
  absl::string_view presented = authorization;
  if (!absl::ConsumePrefix(&presented, "Bearer ") || presented.empty()) {
    return absl::UnauthenticatedError(
        "this server needs a bearer token: send the metadata "
        "'authorization: Bearer <token>'");
  }
  const Token* match = nullptr;
  for (const Token& token : tokens_) {
    if (ConstantTimeEquals(token.secret, presented)) match = &token;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError(
        "the bearer token is not one this server knows");
  }
  if (!match->rights[int(right)]) {
    return absl::PermissionDeniedError(
        absl::StrCat("the bearer token does not have the right '",
                     RightName(right), "' that this call needs"));
  }
  return absl::OkStatus();
}

}  // namespace segserve
