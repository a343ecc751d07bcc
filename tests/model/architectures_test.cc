// The builtin architecture registry and PrepareForInference.

#include "model/architectures.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "tests/model/cgrseg_test_util.h"

namespace segserve {
namespace {

using cgrseg_testing::RandomizeFloats;
using cgrseg_testing::RelativeError;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ArchitecturesTest, NamesAndDefaultClassCounts) {
  EXPECT_THAT(BuiltinArchitectureNames(),
              ElementsAre("sgcpnet", "cgrseg_t", "cgrseg_b", "cgrseg_l",
                          "cgrseg_t_ssa", "cgrseg_b_ssa", "cgrseg_l_ssa"));
  EXPECT_EQ(DefaultNumClasses("sgcpnet"), 19);
  EXPECT_EQ(DefaultNumClasses("cgrseg_l_ssa"), 150);
  EXPECT_EQ(DefaultNumClasses("resnet"), 0);
}

TEST(ArchitecturesTest, ConfigNamesMapToArchitectures) {
  EXPECT_EQ(*BuiltinArchitectureName("cgrseg_b", false), "cgrseg_b");
  EXPECT_EQ(*BuiltinArchitectureName("cgrseg_b", true), "cgrseg_b_ssa");
  EXPECT_EQ(*BuiltinArchitectureName("cgrseg_b_ssa", true), "cgrseg_b_ssa");
  EXPECT_EQ(*BuiltinArchitectureName("sgcpnet", false), "sgcpnet");
  const auto ssa = BuiltinArchitectureName("sgcpnet", true);
  EXPECT_EQ(ssa.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ssa.status().message(), HasSubstr("cgrseg_* architectures only"));
  const auto unknown = BuiltinArchitectureName("cgrseg_x", false);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("unknown builtin architecture 'cgrseg_x'; allowed: "
                        "sgcpnet, cgrseg_t"));
}

TEST(ArchitecturesTest, CreateChecksNameAndClasses) {
  EXPECT_EQ(CreateBuiltinNetwork("resnet", 19).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateBuiltinNetwork("cgrseg_t", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateBuiltinNetwork("cgrseg_t", 65537).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto network = CreateBuiltinNetwork("cgrseg_t_ssa", 7);
  ASSERT_TRUE(network.ok()) << network.status();
  EXPECT_EQ(network->architecture, "cgrseg_t_ssa");
  EXPECT_EQ(network->num_classes, 7);
  EXPECT_EQ(network->output_stride, 8);
  EXPECT_EQ(network->input_multiple, 32);
}

// The rewritten networks compute the same logits (within 1e-4 of their
// largest magnitude), and their state dicts are untouched.
TEST(ArchitecturesTest, PrepareForInferenceKeepsOutputsAndState) {
  for (const char* name : {"sgcpnet", "cgrseg_t", "cgrseg_t_ssa", "cgrseg_l"}) {
    SCOPED_TRACE(name);
    auto network = CreateBuiltinNetwork(name, DefaultNumClasses(name));
    ASSERT_TRUE(network.ok()) << network.status();
    RandomizeFloats(*network->module, 31);
    network->module->eval();
    std::vector<torch::Tensor> before;
    for (const auto& [key, tensor] : ModuleState(*network->module)) {
      before.push_back(tensor.clone());
    }
    const torch::Tensor input = torch::randn({2, 3, 64, 96});
    c10::InferenceMode inference_mode;
    const torch::Tensor plain = network->forward(input);
    PrepareForInference(*network);
    const torch::Tensor prepared = network->forward(input);
    EXPECT_TRUE(prepared.is_contiguous());
    ASSERT_EQ(prepared.sizes(), plain.sizes());
    EXPECT_LE(RelativeError(prepared, plain), 1e-4);
    const StateDict after = ModuleState(*network->module);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_TRUE(torch::equal(after[i].second, before[i])) << after[i].first;
    }
  }
}

// The load-time check of the rewrite: it passes for the real rewrite and
// names the difference when a rewrite changes the logits.
TEST(ArchitecturesTest,
     PrepareCheckedForInferenceCatchesARewriteThatChangesLogits) {
  const torch::Tensor probe = torch::randn({1, 3, 64, 64});
  auto network = CreateBuiltinNetwork("sgcpnet", 5);
  ASSERT_TRUE(network.ok()) << network.status();
  RandomizeFloats(*network->module, 7);
  network->module->eval();
  absl::StatusOr<double> checked =
      PrepareCheckedForInference(*network, probe, 1e-4);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_LE(*checked, 1e-4);

  auto broken = CreateBuiltinNetwork("sgcpnet", 5);
  ASSERT_TRUE(broken.ok()) << broken.status();
  RandomizeFloats(*broken->module, 7);
  broken->module->eval();
  // A rewrite with a bug: it shifts the classifier's bias.
  broken->prepare = [module = broken->module] {
    torch::NoGradGuard no_grad;
    module->named_parameters()["classifier.bias"].add_(1);
  };
  checked = PrepareCheckedForInference(*broken, probe, 1e-4);
  EXPECT_EQ(checked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(checked.status().message(),
              testing::HasSubstr("inference rewrite of sgcpnet changes its "
                                 "logits"));
}

}  // namespace
}  // namespace segserve
