#ifndef SEGSERVE_SERVER_SERVICE_TOKEN_AUTHORIZER_H_
#define SEGSERVE_SERVER_SERVICE_TOKEN_AUTHORIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segserve {

// What a bearer token may call. Health and reflection need none: probes
// and tooling reach them without a token.
enum class Right {
  kInference,  // Inference: Segment, SegmentStream, ModelInfer, REST infer.
  kMetadata,   // Models, their metadata, statistics and the index.
  kAdmin,      // Model control: loading and unloading models.
};

// The tokens of --auth_tokens_file and their rights. The file has one token
// per line, then its rights, comma-separated:
//   <token> inference,metadata
//   <token> all
// '#' starts a comment. Tokens are at least 16 characters of printable
// ASCII without spaces. Immutable and thread-safe once made.
class TokenAuthorizer {
 public:
  static absl::StatusOr<std::unique_ptr<TokenAuthorizer>> FromFile(
      const std::string& path);
  // `source` names the text in messages.
  static absl::StatusOr<std::unique_ptr<TokenAuthorizer>> FromText(
      absl::string_view text, absl::string_view source);

  // `authorization` is the call's "authorization" metadata, empty when it
  // has none. UNAUTHENTICATED when it is missing, not "Bearer <token>" or
  // an unknown token; PERMISSION_DENIED when the token lacks `right`. Every
  // token is compared, each in constant time, so the answer's timing does
  // not tell how much of a guess was right.
  absl::Status Check(absl::string_view authorization, Right right) const;

 private:
  struct Token {
    std::string secret;
    bool rights[3] = {false, false, false};
  };
  explicit TokenAuthorizer(std::vector<Token> tokens)
      : tokens_(std::move(tokens)) {}

  const std::vector<Token> tokens_;
};

const char* RightName(Right right);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVICE_TOKEN_AUTHORIZER_H_
