#include "tools/segload/load_parse.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int> Concurrency(const std::string& text) {
  absl::StatusOr<std::vector<int>> levels = ParseConcurrencyLevels(text);
  EXPECT_TRUE(levels.ok()) << text << ": " << levels.status();
  return levels.ok() ? *levels : std::vector<int>();
}

std::string ConcurrencyError(const std::string& text) {
  absl::StatusOr<std::vector<int>> levels = ParseConcurrencyLevels(text);
  EXPECT_FALSE(levels.ok()) << text;
  if (levels.ok()) return "";
  EXPECT_EQ(levels.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(levels.status().message());
}

TEST(ParseConcurrencyLevelsTest, Lists) {
  EXPECT_THAT(Concurrency("1,4,16"), ElementsAre(1, 4, 16));
  EXPECT_THAT(Concurrency(" 8 , 2 ,"), ElementsAre(8, 2));  // Order kept.
  EXPECT_THAT(Concurrency("1024"), ElementsAre(1024));
}

TEST(ParseConcurrencyLevelsTest, Ranges) {
  EXPECT_THAT(Concurrency("1:64:x2"), ElementsAre(1, 2, 4, 8, 16, 32, 64));
  EXPECT_THAT(Concurrency("1:100:x2"), ElementsAre(1, 2, 4, 8, 16, 32, 64));
  EXPECT_THAT(Concurrency("3:30:x3"), ElementsAre(3, 9, 27));
  EXPECT_THAT(Concurrency("1:16:+4"), ElementsAre(1, 5, 9, 13));
  EXPECT_THAT(Concurrency("4:16:+4"), ElementsAre(4, 8, 12, 16));
  EXPECT_THAT(Concurrency("10:40:10"), ElementsAre(10, 20, 30, 40));
  EXPECT_THAT(Concurrency("1:4"), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(Concurrency("5:5"), ElementsAre(5));
  EXPECT_THAT(Concurrency("1,8:32:x2,48"), ElementsAre(1, 8, 16, 32, 48));
}

TEST(ParseConcurrencyLevelsTest, Errors) {
  EXPECT_THAT(ConcurrencyError(""), HasSubstr("--concurrency lists no level"));
  EXPECT_THAT(ConcurrencyError("0"), HasSubstr("outside 1..1024"));
  EXPECT_THAT(ConcurrencyError("2000"), HasSubstr("outside 1..1024"));
  EXPECT_THAT(ConcurrencyError("1.5"), HasSubstr("not an integer"));
  EXPECT_THAT(ConcurrencyError("a"), HasSubstr("'a': not a number"));
  EXPECT_THAT(ConcurrencyError("8:1"), HasSubstr("start is above its end"));
  EXPECT_THAT(ConcurrencyError("1:8:x1"), HasSubstr("factor must be > 1"));
  EXPECT_THAT(ConcurrencyError("1:8:+0"), HasSubstr("step must be > 0"));
  EXPECT_THAT(ConcurrencyError("1:8:*2"), HasSubstr("the step is not"));
  EXPECT_THAT(ConcurrencyError("1:8:2:3"), HasSubstr("too many ':'"));
  EXPECT_THAT(ConcurrencyError("1:2000"), HasSubstr("more than 256 levels"));
  EXPECT_THAT(ConcurrencyError("nan"), HasSubstr("not a number"));
}

TEST(ParseRatesTest, FractionalRangesLandOnTheirEnd) {
  absl::StatusOr<std::vector<double>> rates = ParseRates("0.1:0.5:+0.1");
  ASSERT_TRUE(rates.ok()) << rates.status();
  ASSERT_EQ(rates->size(), 5u);
  EXPECT_DOUBLE_EQ((*rates)[2], 0.3);
  EXPECT_EQ((*rates)[4], 0.5);
  rates = ParseRates("10,50");
  ASSERT_TRUE(rates.ok());
  EXPECT_THAT(*rates, ElementsAre(DoubleEq(10), DoubleEq(50)));
  rates = ParseRates("12.5:100:x2");
  ASSERT_TRUE(rates.ok());
  EXPECT_THAT(*rates, ElementsAre(DoubleEq(12.5), DoubleEq(25), DoubleEq(50),
                                  DoubleEq(100)));
  EXPECT_FALSE(ParseRates("0").ok());
  EXPECT_FALSE(ParseRates("-5").ok());
  EXPECT_FALSE(ParseRates("2e6").ok());
  EXPECT_FALSE(ParseRates("0:10:x2").ok());  // Multiplying from 0.
  EXPECT_THAT(std::string(ParseRates("inf").status().message()),
              HasSubstr("--rate has 'inf'"));
}

TEST(ParseSizesTest, ListsAndErrors) {
  absl::StatusOr<std::vector<ImageDims>> sizes =
      ParseSizes("512x512, 1024X768");
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  ASSERT_EQ(sizes->size(), 2u);
  EXPECT_EQ((*sizes)[0].width, 512);
  EXPECT_EQ((*sizes)[1].width, 1024);
  EXPECT_EQ((*sizes)[1].height, 768);
  for (const char* bad : {"", "512", "0x5", "5x0", "20000x1", "axb", "1x2x3"}) {
    EXPECT_EQ(ParseSizes(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ParseTargetsTest, ListsAndErrors) {
  absl::StatusOr<std::vector<std::string>> targets =
      ParseTargets(" a:1 ,b:2,dns:///c:3");
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_THAT(*targets, ElementsAre("a:1", "b:2", "dns:///c:3"));
  targets = ParseTargets("a:1,a:1");  // Twice the share.
  ASSERT_TRUE(targets.ok());
  EXPECT_EQ(targets->size(), 2u);
  EXPECT_THAT(std::string(ParseTargets(" , ").status().message()),
              HasSubstr("--target lists no server"));
  std::string many;
  for (int i = 0; i < 65; ++i) many += "h:1,";
  EXPECT_THAT(std::string(ParseTargets(many).status().message()),
              HasSubstr("at most 64"));
}

}  // namespace
}  // namespace segserve
