#include "model/sgcpnet.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "model/checkpoint.h"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace {

using testing_util::kKeysFile;
using testing_util::Randomize;
using testing_util::ReadLines;

// Tests that need the Python fixtures (skipped without python3-torch).
using SgcpNetPythonTest = testing_util::PythonFixtureTest;

constexpr int64_t kOfficialParameters = 607826;

std::vector<std::string> DescribeState(torch::nn::Module& module) {
  std::vector<std::string> lines;
  for (const auto& [name, tensor] : ModuleState(module)) {
    lines.push_back(DescribeTensor(name, tensor));
  }
  return lines;
}

int64_t CountParameters(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

torch::Tensor Forward(SgcpNet& net, const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  return net->forward(input);
}

TEST(SgcpNetTest, StateMatchesOfficialKeysShapesAndDtypesInOrder) {
  SgcpNet net;
  const std::vector<std::string> expected = ReadLines(kKeysFile);
  ASSERT_EQ(expected.size(), 476u);
  EXPECT_EQ(DescribeState(*net), expected);
}

TEST(SgcpNetTest, NamedParametersAndBuffersAreExactlyTheKeys) {
  SgcpNet net;
  std::set<std::string> expected;
  for (const std::string& line : ReadLines(kKeysFile)) {
    expected.insert(line.substr(0, line.find('\t')));
  }
  std::multiset<std::string> names;
  for (const auto& item : net->named_parameters()) names.insert(item.key());
  for (const auto& item : net->named_buffers()) names.insert(item.key());
  EXPECT_EQ(names.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
}

TEST(SgcpNetTest, ParameterCountIsOfficial) {
  SgcpNet net;
  EXPECT_EQ(CountParameters(*net), kOfficialParameters);
  int64_t fusion_weights = 0;
  for (const auto& item : net->named_parameters()) {
    if (absl::EndsWith(item.key(), "_w1") ||
        absl::EndsWith(item.key(), "_w2")) {
      fusion_weights += item.value().numel();
    }
  }
  EXPECT_EQ(fusion_weights, 27);
}

TEST(SgcpNetTest, NumClassesOnlyChangesTheClassifier) {
  SgcpNet official;
  SgcpNet seven(7);
  EXPECT_EQ(seven->num_classes(), 7);
  EXPECT_EQ(CountParameters(*seven), kOfficialParameters - 12 * 65);
  std::vector<std::string> lines = DescribeState(*official);
  lines[lines.size() - 2] = "classifier.weight\t(7, 64, 1, 1)\tfloat32";
  lines[lines.size() - 1] = "classifier.bias\t(7,)\tfloat32";
  EXPECT_EQ(DescribeState(*seven), lines);
}

TEST(SgcpNetTest, BatchNormEpsilonsAreOfficial) {
  SgcpNet net;
  for (const auto& item : net->named_modules()) {
    const auto* bn = item.value()->as<torch::nn::BatchNorm2d>();
    if (bn == nullptr) continue;
    const bool bifpn = absl::StartsWith(item.key(), "sgcp.");
    EXPECT_DOUBLE_EQ(bn->options.eps(), bifpn ? 1e-3 : 1e-5) << item.key();
    EXPECT_DOUBLE_EQ(bn->options.momentum().value(), bifpn ? 0.01 : 0.1)
        << item.key();
  }
}

TEST(SgcpNetTest, LogitsAreOneEighthOf512x512) {
  SgcpNet net;
  net->eval();
  const torch::Tensor logits = Forward(net, torch::randn({2, 3, 512, 512}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 19, 64, 64}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(SgcpNetTest, LogitsAreOneEighthOf768x1536) {
  SgcpNet net;
  net->eval();
  const torch::Tensor logits = Forward(net, torch::randn({1, 3, 768, 1536}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{1, 19, 96, 192}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(SgcpNetTest, SizesThatAreNotMultiplesOf32RoundUp) {
  SgcpNet net;
  net->eval();
  EXPECT_EQ(Forward(net, torch::randn({1, 3, 72, 100})).sizes(),
            (std::vector<int64_t>{1, 19, 9, 13}));
  EXPECT_EQ(Forward(net, torch::randn({1, 3, 33, 47})).sizes(),
            (std::vector<int64_t>{1, 19, 5, 6}));
}

TEST(SgcpNetTest, BatchItemsAreIndependentInEvalMode) {
  SgcpNet net;
  Randomize(*net, 3);
  net->eval();
  const torch::Tensor input = torch::randn({2, 3, 64, 96});
  const torch::Tensor both = Forward(net, input);
  EXPECT_TRUE(torch::allclose(both[1], Forward(net, input.narrow(0, 1, 1))[0],
                              1e-4, 1e-5));
}

TEST(SgcpNetTest, FixedSeedGivesFixedWeights) {
  torch::manual_seed(11);
  SgcpNet a;
  torch::manual_seed(11);
  SgcpNet b;
  const StateDict state_a = ModuleState(*a);
  const StateDict state_b = ModuleState(*b);
  ASSERT_EQ(state_a.size(), state_b.size());
  for (size_t i = 0; i < state_a.size(); ++i) {
    EXPECT_TRUE(torch::equal(state_a[i].second, state_b[i].second))
        << state_a[i].first;
  }
}

TEST(SgcpNetTest, OneAndTwoThreadsAgree) {
  const int threads = at::get_num_threads();
  torch::manual_seed(5);
  SgcpNet net;
  net->eval();
  const torch::Tensor input = torch::randn({2, 3, 256, 256});
  at::set_num_threads(1);
  const torch::Tensor one = Forward(net, input);
  at::set_num_threads(2);
  const torch::Tensor two = Forward(net, input);
  at::set_num_threads(threads);
  EXPECT_LE((one - two).abs().max().item<float>(), 1e-5);
}

// The independent Python reference (which matches the official module
// bit for bit) and this module agree on the same weights.
TEST_F(SgcpNetPythonTest, MatchesPythonReferenceLogits) {
  SgcpNet net;
  ASSERT_TRUE(LoadStateDictFile(Fixture("ref_state_dict.pt"), net.get()).ok());
  net->eval();
  for (const auto& [input, logits] :
       {std::pair<std::string, std::string>{"input", "logits"},
        {"input_odd", "logits_odd"}}) {
    const torch::Tensor expected = expected_.at(logits);
    const torch::Tensor actual = Forward(net, expected_.at(input));
    ASSERT_EQ(actual.sizes(), expected.sizes());
    const float scale = expected.abs().max().item<float>();
    EXPECT_LE((actual - expected).abs().max().item<float>(), 1e-5 * scale)
        << input << ", logits up to " << scale;
  }
}

}  // namespace
}  // namespace segserve
