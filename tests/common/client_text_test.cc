#include "common/client_text.h"

#include <string>

#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(ClientTextTest, ShortTextIsQuotedWhole) {
  EXPECT_EQ(QuoteClientText("sgcpnet"), "'sgcpnet'");
  EXPECT_EQ(QuoteClientText(""), "''");
}

TEST(ClientTextTest, ControlAndNonAsciiBytesAreEscaped) {
  EXPECT_EQ(QuoteClientText(std::string("a\0-\n\xff", 5)), "'a\\x00-\\n\\xff'");
  EXPECT_EQ(QuoteClientText("it's"), "'it\\'s'");
}

TEST(ClientTextTest, LongTextIsCutWithItsLength) {
  const std::string quoted = QuoteClientText(std::string(10000, 'x'));
  EXPECT_EQ(quoted,
            "'" + std::string(kMaxQuotedBytes, 'x') + "...' (10000 bytes)");
}

TEST(ClientTextTest, StatusMessagesAreBounded) {
  EXPECT_EQ(BoundStatusMessage("short"), "short");
  const std::string bounded = BoundStatusMessage(std::string(100000, 'y'));
  EXPECT_EQ(bounded.size(), kMaxStatusMessageBytes);
  EXPECT_EQ(bounded.substr(bounded.size() - 14), " [message cut]");
}

}  // namespace
}  // namespace segserve
