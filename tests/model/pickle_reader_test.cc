// The unpickler's own limits on hostile pickles (model/pickle_reader).
#include "model/pickle_reader.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

// PROTO 2, `body`, STOP.
std::string Pickle(const std::string& body) {
  return std::string("\x80\x02", 2) + body + ".";
}

TEST(PickleReaderTest, NestedListsWithinTheLimitAreRead) {
  // [[[]]]: three lists, each appended into the one before.
  auto value = Unpickle(Pickle("]]]aa"), nullptr);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ((*value)->kind, PyValue::Kind::kList);
  ASSERT_EQ((*value)->items.size(), 1u);
  EXPECT_EQ((*value)->items[0]->items.size(), 1u);
}

// A list appended into itself through the memo: refused, and not leaked
// (the fuzzer's LeakSanitizer found the leak).
TEST(PickleReaderTest, ACycleIsRefused) {
  const std::string body = std::string("]q\x00h\x00", 5) + "a";
  auto value = Unpickle(Pickle(body), nullptr);
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(value.status().message()), HasSubstr("cycle"));
}

// A cycle left in the memo, off the result, does not matter to the result;
// it is taken apart rather than leaked (LeakSanitizer checks that in the
// fuzz build: tests/fuzz/corpus/pickle_fuzzer/regression-*).
TEST(PickleReaderTest, ACycleOffTheResultIsTakenApart) {
  const std::string body = std::string("]q\x00h\x00", 5) + "a0N";
  auto value = Unpickle(Pickle(body), nullptr);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ((*value)->kind, PyValue::Kind::kNone);
}

// 100,000 nested lists would make any recursive walk (or the destructor)
// overflow the stack: refused, and torn down without recursion.
TEST(PickleReaderTest, DeepNestingIsRefused) {
  const int depth = 100000;
  const std::string body =
      std::string(depth, ']') + std::string(depth - 1, 'a');
  auto value = Unpickle(Pickle(body), nullptr);
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(value.status().message()),
              HasSubstr("more than 64 deep"));
}

}  // namespace
}  // namespace segserve
