// Runs the segtool binary (SEGTOOL_PATH) as a user would.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"
#include "model/torch_model.h"
#include "tests/model/segtool_runner.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

using Result = testing_util::SegtoolResult;
using testing_util::RunSegtool;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "segtool_test_", getpid(), "_",
                      name);
}

TEST(SegtoolTest, KeysPrintsTheOfficialKeysFile) {
  const Result result = RunSegtool("keys --arch sgcpnet");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output,
            ReadFile(SEGSERVE_SOURCE_DIR "/tests/data/sgcpnet.keys.txt"));
}

TEST(SegtoolTest, KeysFollowNumClasses) {
  const Result result = RunSegtool("keys --arch=sgcpnet --num_classes=7");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output,
              HasSubstr("classifier.weight\t(7, 64, 1, 1)\tfloat32\n"
                        "classifier.bias\t(7,)\tfloat32\n"));
}

TEST(SegtoolTest, InitIsDeterministicAndLoadsAsBuiltin) {
  const std::string first = TempPath("first.pt");
  const std::string second = TempPath("second.pt");
  const std::string other = TempPath("other.pt");
  ASSERT_EQ(
      RunSegtool("init --arch sgcpnet --seed 42 --output " + first).exit_code,
      0);
  ASSERT_EQ(
      RunSegtool("init --arch sgcpnet --seed 42 --output " + second).exit_code,
      0);
  ASSERT_EQ(
      RunSegtool("init --arch sgcpnet --seed 43 --output " + other).exit_code,
      0);
  EXPECT_EQ(ReadFile(first), ReadFile(second));
  EXPECT_NE(ReadFile(first), ReadFile(other));

  TorchModelOptions options;
  options.weights_path = first;
  options.input_height = 32;
  options.input_width = 32;
  auto model = LoadTorchModel(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->parameter_count(), 607826);

  const Result info = RunSegtool("info --arch sgcpnet --weights " + first);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_THAT(info.output, HasSubstr("parameters: 607826"));
  EXPECT_THAT(info.output, HasSubstr("loads strictly"));
  for (const std::string& path : {first, second, other}) {
    std::filesystem::remove(path);
  }
}

TEST(SegtoolTest, HalfHalvesTheFileAndStillLoads) {
  const std::string full = TempPath("full.pt");
  const std::string half = TempPath("half.pt");
  ASSERT_EQ(
      RunSegtool("init --arch sgcpnet --seed 42 --output " + full).exit_code,
      0);
  const Result result =
      RunSegtool("half --weights " + full + " --output " + half);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("as float16"));
  EXPECT_LT(std::filesystem::file_size(half),
            0.6 * std::filesystem::file_size(full));

  absl::StatusOr<StateDict> state = ReadStateDict(half);
  ASSERT_TRUE(state.ok()) << state.status();
  for (const auto& [name, tensor] : *state) {
    if (tensor.is_floating_point()) {
      EXPECT_EQ(tensor.scalar_type(), torch::kHalf) << name;
    }
  }
  TorchModelOptions options;
  options.weights_path = half;
  options.input_height = 32;
  options.input_width = 32;
  auto model = LoadTorchModel(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->parameter_count(), 607826);
  std::filesystem::remove(full);
  std::filesystem::remove(half);
}

TEST(SegtoolTest, HalfRefusesValuesBeyondItsRange) {
  const std::string big = TempPath("big.pt");
  ASSERT_TRUE(SaveStateDict({{"scale", torch::full({3}, 1e6)}}, big).ok());
  const Result result =
      RunSegtool("half --weights " + big + " --output " + TempPath("x.pt"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("scale holds 1e+06, beyond float16"));
  std::filesystem::remove(big);
}

TEST(SegtoolTest, UsageErrorsExitWithTwo) {
  // Each run loads LibTorch (about a second), so only a few cases.
  for (const char* arguments :
       {"", "bogus", "keys --arch resnet", "keys --arch sgcpnet --x 1",
        "init --arch sgcpnet --seed -1 --output x.pt", "half --weights x.pt"}) {
    const Result result = RunSegtool(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments;
    EXPECT_THAT(result.output, HasSubstr("usage:")) << arguments;
  }
}

TEST(SegtoolTest, BadWeightsExitWithOne) {
  const Result result = RunSegtool(
      "info --arch sgcpnet --num_classes 5 --weights " + TempPath("no.pt"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("no such file"));
}

}  // namespace
}  // namespace segserve
