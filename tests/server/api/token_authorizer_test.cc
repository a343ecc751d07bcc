#include "server/service/token_authorizer.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

constexpr char kTokens[] = R"(# segserve tokens
inference-token-0123456789 inference
metadata-token-0123456789  metadata   # read-only dashboards
admin-token-0123456789ab   all
)";

TEST(TokenAuthorizerTest, ChecksTokensAndRights) {
  auto authorizer = TokenAuthorizer::FromText(kTokens, "tokens.txt");
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  const TokenAuthorizer& a = **authorizer;
  EXPECT_TRUE(
      a.Check("Bearer inference-token-0123456789", Right::kInference).ok());
  EXPECT_EQ(
      a.Check("Bearer inference-token-0123456789", Right::kMetadata).code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(
      a.Check("Bearer metadata-token-0123456789", Right::kMetadata).ok());
  for (Right right : {Right::kInference, Right::kMetadata, Right::kAdmin}) {
    EXPECT_TRUE(a.Check("Bearer admin-token-0123456789ab", right).ok());
  }
  const absl::Status denied =
      a.Check("Bearer metadata-token-0123456789", Right::kAdmin);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("'admin'"));
}

TEST(TokenAuthorizerTest, MissingOrUnknownTokensAreUnauthenticated) {
  auto authorizer = TokenAuthorizer::FromText(kTokens, "tokens.txt");
  ASSERT_TRUE(authorizer.ok());
  for (const char* header :
       {"", "Bearer", "Bearer ", "Basic inference-token-0123456789",
        "inference-token-0123456789", "Bearer inference-token-012345678",
        "Bearer inference-token-01234567890",
        "bearer inference-token-0123456789"}) {
    const absl::Status status = (*authorizer)->Check(header, Right::kInference);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << header;
  }
  EXPECT_THAT(
      std::string((*authorizer)->Check("", Right::kInference).message()),
      HasSubstr("authorization: Bearer <token>"));
}

TEST(TokenAuthorizerTest, BadFilesSayWhichLineAndWhy) {
  const struct {
    const char* text;
    const char* says;
  } cases[] = {
      {"short inference\n", "tokens.txt:1: the token is shorter than 16"},
      {"\nlong-enough-token-123 inference,root\n",
       "tokens.txt:2: unknown right 'root'"},
      {"long-enough-token-123\n", "expected a token and its rights"},
      {"long-enough-token-123 inference extra\n",
       "expected a token and its rights"},
      {"# only comments\n\n", "lists no token"},
  };
  for (const auto& c : cases) {
    auto authorizer = TokenAuthorizer::FromText(c.text, "tokens.txt");
    ASSERT_FALSE(authorizer.ok()) << c.text;
    EXPECT_EQ(authorizer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(authorizer.status().message()), HasSubstr(c.says));
  }
  EXPECT_THAT(
      std::string(
          TokenAuthorizer::FromFile("/nonexistent/tokens").status().message()),
      HasSubstr("cannot be read"));
}

}  // namespace
}  // namespace segserve
