// The whole CGRSeg networks: official keys, parameter and MAC figures,
// shapes, determinism.

#include "model/cgrseg.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "model/checkpoint.h"
#include "model/mac_counter.h"
#include "tests/model/cgrseg_test_util.h"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace {

using cgrseg_testing::CountParameters;
using cgrseg_testing::DescribeState;
using cgrseg_testing::KeysFile;
using cgrseg_testing::RandomizeFloats;
using testing_util::ReadLines;

constexpr auto kDpg = CgrSegClassifier::kDpg;
constexpr auto kSsa = CgrSegClassifier::kSsa;

torch::Tensor Forward(CgrSeg& net, const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  return net->forward(input);
}

std::set<std::string> Names(const std::vector<std::string>& lines) {
  std::set<std::string> names;
  for (const std::string& line : lines) {
    names.insert(line.substr(0, line.find('\t')));
  }
  return names;
}

TEST(CgrSegTest, StatesMatchOfficialKeysShapesAndDtypesInOrder) {
  struct Case {
    const char* keys;
    CgrSegVariant variant;
    CgrSegClassifier classifier;
    size_t lines;
  };
  for (const Case& c : {Case{"cgrseg_t", CgrSegVariant::kT, kDpg, 952},
                        Case{"cgrseg_b", CgrSegVariant::kB, kDpg, 1317},
                        Case{"cgrseg_l", CgrSegVariant::kL, kDpg, 1640},
                        Case{"cgrseg_t_ssa", CgrSegVariant::kT, kSsa, 962}}) {
    CgrSeg net(c.variant, c.classifier);
    const std::vector<std::string> expected = ReadLines(KeysFile(c.keys));
    ASSERT_EQ(expected.size(), c.lines) << c.keys;
    EXPECT_EQ(DescribeState(*net), expected) << c.keys;
  }
}

// No key file exists for B and L with SSA: their keys are those of the DPG
// model without `lgc`, plus T+SSA's SSA modules.
TEST(CgrSegTest, SsaKeysAreDpgKeysWithSsaModulesInsteadOfLgc) {
  const std::set<std::string> t = Names(ReadLines(KeysFile("cgrseg_t")));
  const std::set<std::string> t_ssa =
      Names(ReadLines(KeysFile("cgrseg_t_ssa")));
  std::set<std::string> ssa_only;
  for (const std::string& name : t_ssa) {
    if (t.count(name) == 0) ssa_only.insert(name);
  }
  EXPECT_EQ(ssa_only.size(), 18u);
  for (auto [dpg_keys, variant] :
       {std::pair<const char*, CgrSegVariant>{"cgrseg_b", CgrSegVariant::kB},
        {"cgrseg_l", CgrSegVariant::kL}}) {
    std::set<std::string> expected = ssa_only;
    for (const std::string& name : Names(ReadLines(KeysFile(dpg_keys)))) {
      if (!absl::StartsWith(name, "decode_head.lgc.")) expected.insert(name);
    }
    CgrSeg net(variant, kSsa);
    EXPECT_EQ(Names(DescribeState(*net)), expected) << dpg_keys;
  }
}

TEST(CgrSegTest, ParameterCountsAreOfficial) {
  CgrSeg t(CgrSegVariant::kT, kDpg);
  EXPECT_EQ(CountParameters(*t), 9364647);
  EXPECT_EQ(CountParameters(*t, "backbone."), 5748360);
  EXPECT_EQ(CountParameters(*t, "decode_head."), 3616287);
  CgrSeg b(CgrSegVariant::kB, kDpg);
  EXPECT_EQ(CountParameters(*b), 19114871);
  CgrSeg l(CgrSegVariant::kL, kDpg);
  EXPECT_EQ(CountParameters(*l), 35677703);
  // Within 1% of the paper's 9.4 / 19.1 / 35.7 M.
  EXPECT_NEAR(CountParameters(*t) / 1e6, 9.4, 0.094);
  EXPECT_NEAR(CountParameters(*b) / 1e6, 19.1, 0.191);
  EXPECT_NEAR(CountParameters(*l) / 1e6, 35.7, 0.357);

  CgrSeg t_ssa(CgrSegVariant::kT, kSsa);
  EXPECT_EQ(CountParameters(*t_ssa), 9483302);
  int64_t training_only = 0;
  for (const auto& item : t_ssa->named_parameters()) {
    if (absl::StartsWith(item.key(), "decode_head.gt_")) {
      training_only += item.value().numel();
    }
  }
  EXPECT_EQ(CountParameters(*t_ssa) - training_only, 9417510);
}

TEST(CgrSegTest, NumClassesOnlyChangesClassifierShapes) {
  CgrSeg official(CgrSegVariant::kT, kSsa);
  CgrSeg seven(CgrSegVariant::kT, kSsa, 7);
  std::vector<std::string> expected = DescribeState(*official);
  for (std::string& line : expected) {
    if (absl::StartsWith(line, "decode_head.conv_seg.weight")) {
      line = "decode_head.conv_seg.weight\t(7, 128, 1, 1)\tfloat32";
    } else if (absl::StartsWith(line, "decode_head.conv_seg.bias")) {
      line = "decode_head.conv_seg.bias\t(7,)\tfloat32";
    } else if (absl::StartsWith(line, "decode_head.center_pos.weight")) {
      line = "decode_head.center_pos.weight\t(7, 128)\tfloat32";
    } else if (absl::StartsWith(line, "decode_head.ssa_loss.")) {
      line = "decode_head.ssa_loss.criterion.empty_weight\t(8,)\tfloat32";
    }
  }
  EXPECT_EQ(DescribeState(*seven), expected);
}

// The conv + linear multiply-accumulates of one 512 x 512 image: the
// official counts, within 5% of the paper's GFLOPs.
TEST(CgrSegTest, MacsAt512AreOfficial) {
  struct Case {
    CgrSegVariant variant;
    double official_g;
    double paper_g;
  };
  for (const Case& c : {Case{CgrSegVariant::kT, 3.945, 4.0},
                        Case{CgrSegVariant::kB, 7.593, 7.6},
                        Case{CgrSegVariant::kL, 14.789, 14.9}}) {
    CgrSeg net(c.variant, kDpg);
    net->eval();
    MacCount count;
    {
      MacCounter counter;
      Forward(net, torch::zeros({1, 3, 512, 512}));
      count = counter.count();
    }
    const double giga = static_cast<double>(count.total()) / 1e9;
    EXPECT_NEAR(giga, c.official_g, 0.0005) << c.official_g;
    EXPECT_NEAR(giga, c.paper_g, 0.05 * c.paper_g) << c.paper_g;
  }
}

TEST(CgrSegTest, LogitsAreOneEighthOfAnyMultipleOf32) {
  CgrSeg net(CgrSegVariant::kT, kDpg);
  RandomizeFloats(*net, 1);
  net->eval();
  for (auto [height, width] :
       {std::pair<int64_t, int64_t>{32, 32}, {64, 64}, {96, 160}, {160, 64}}) {
    const torch::Tensor logits =
        Forward(net, torch::randn({2, 3, height, width}));
    EXPECT_EQ(logits.sizes(),
              (std::vector<int64_t>{2, 150, height / 8, width / 8}));
    EXPECT_TRUE(logits.isfinite().all().item<bool>()) << height << "x" << width;
  }
}

TEST(CgrSegTest, SidesThatAreNotMultiplesOf32AreRefused) {
  CgrSeg net(CgrSegVariant::kT, kDpg);
  net->eval();
  EXPECT_THROW(Forward(net, torch::randn({1, 3, 64, 80})), c10::Error);
  EXPECT_THROW(Forward(net, torch::randn({1, 1, 64, 64})), c10::Error);
}

TEST(CgrSegTest, BatchItemsAreIndependentInEvalMode) {
  CgrSeg net(CgrSegVariant::kT, kSsa);
  RandomizeFloats(*net, 2);
  net->eval();
  const torch::Tensor input = torch::randn({3, 3, 64, 96});
  const torch::Tensor all = Forward(net, input);
  const torch::Tensor one = Forward(net, input.narrow(0, 1, 1));
  EXPECT_LE(cgrseg_testing::RelativeError(all.narrow(0, 1, 1), one), 1e-5);
}

TEST(CgrSegTest, OneAndTwoThreadsAgree) {
  const int threads = at::get_num_threads();
  for (CgrSegClassifier classifier : {kDpg, kSsa}) {
    CgrSeg net(CgrSegVariant::kT, classifier);
    RandomizeFloats(*net, 3);
    net->eval();
    const torch::Tensor input = torch::randn({2, 3, 128, 128});
    at::set_num_threads(1);
    const torch::Tensor one = Forward(net, input);
    at::set_num_threads(2);
    const torch::Tensor two = Forward(net, input);
    at::set_num_threads(threads);
    EXPECT_LE((one - two).abs().max().item<float>(), 1e-5);
  }
}

TEST(CgrSegTest, FixedSeedGivesFixedWeights) {
  torch::manual_seed(11);
  CgrSeg a(CgrSegVariant::kT, kSsa);
  torch::manual_seed(11);
  CgrSeg b(CgrSegVariant::kT, kSsa);
  const StateDict state_a = ModuleState(*a);
  const StateDict state_b = ModuleState(*b);
  ASSERT_EQ(state_a.size(), state_b.size());
  for (size_t i = 0; i < state_a.size(); ++i) {
    EXPECT_TRUE(torch::equal(state_a[i].second, state_b[i].second))
        << state_a[i].first;
  }
}

// The official modules keep PyTorch's defaults: BN and LayerNorm eps 1e-5.
TEST(CgrSegTest, NormEpsilonsAreOfficial) {
  CgrSeg net(CgrSegVariant::kB, kDpg);
  int layer_norms = 0;
  for (const auto& item : net->named_modules()) {
    if (const auto* bn = item.value()->as<torch::nn::BatchNorm2d>()) {
      EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-5) << item.key();
    } else if (const auto* ln = item.value()->as<torch::nn::LayerNorm>()) {
      EXPECT_DOUBLE_EQ(ln->options.eps(), 1e-5) << item.key();
      ++layer_norms;
    }
  }
  EXPECT_EQ(layer_norms, 1);  // lgc.channel_mul_conv.1
}

// Untrained, the official init makes each RCM nearly the identity (layer
// scale 1e-6) and the DPG gate a constant 0.5 (zero last conv).
TEST(CgrSegTest, InitializationFollowsTheOfficialModules) {
  CgrSeg net(CgrSegVariant::kT, kDpg);
  for (const auto& [name, tensor] : ModuleState(*net)) {
    if (absl::StartsWith(name, "decode_head.") &&
        absl::EndsWith(name, ".gamma")) {
      EXPECT_TRUE(torch::allclose(tensor, torch::full_like(tensor, 1e-6)))
          << name;
    }
    if (absl::StartsWith(name, "decode_head.lgc.channel_mul_conv.3.") ||
        name == "decode_head.conv_seg.bias") {
      EXPECT_EQ(tensor.abs().max().item<float>(), 0) << name;
    }
  }
  const torch::Tensor classifier =
      net->decode_head()->named_parameters()["conv_seg.weight"];
  EXPECT_NEAR(classifier.std().item<float>(), 0.01, 0.001);
}

}  // namespace
}  // namespace segserve
