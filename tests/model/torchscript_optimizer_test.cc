#include "model/torchscript_optimizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Level = TorchScriptOptimization;

// Convolution, BatchNorm and ReLU, the pattern that freezing folds and
// optimize_for_inference moves to oneDNN: 3 channels in, 4 classes out.
// `repeats` > 1 computes the same output that many times over.
torch::jit::Module ConvBnRelu(int repeats = 1) {
  torch::manual_seed(7);
  torch::jit::Module module("ConvBnRelu");
  module.register_parameter("weight", torch::randn({4, 3, 3, 3}) * 0.3, false);
  module.register_parameter("bias", torch::randn({4}), false);
  module.register_parameter("gamma", torch::rand({4}) + 0.5, false);
  module.register_parameter("beta", torch::randn({4}) * 0.1, false);
  module.register_buffer("mean", torch::randn({4}) * 0.1);
  module.register_buffer("var", torch::rand({4}) + 0.5);
  module.define(R"(
def forward(self, x):
    y = x
    for i in range()" +
                std::to_string(repeats) + R"():
        y = torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1])
        y = torch.batch_norm(y, self.gamma, self.beta, self.mean, self.var,
                             False, 0.1, 1e-5, False)
    return torch.relu(y)
)");
  return module;
}

// A module with the given forward body, of one input x.
torch::jit::Module ModuleReturning(const std::string& body) {
  torch::jit::Module module("Returning");
  module.define("def forward(self, x):\n    return " + body + "\n");
  return module;
}

TorchScriptProbe Probe(int64_t max_batch_size, int64_t num_classes = 4) {
  TorchScriptProbe probe;
  probe.height = 16;
  probe.width = 24;
  probe.max_batch_size = max_batch_size;
  probe.num_classes = num_classes;
  return probe;
}

torch::Tensor Forward(torch::jit::Module& module, const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  return module.forward({input}).toTensor();
}

// A new batch, of a size the check did not run.
torch::Tensor Batch() { return torch::randn({3, 3, 16, 24}); }

double RelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / a.abs().max().item<double>();
}

TEST(TorchScriptOptimizerTest, EveryLevelServesTheSavedModulesLogits) {
  torch::jit::Module saved = ConvBnRelu();
  const torch::Tensor input = Batch();
  const torch::Tensor expected = Forward(saved, input);
  for (Level level : {Level::kNone, Level::kFreeze, Level::kFreezeChannelsLast,
                      Level::kOptimizeForInference, Level::kAuto}) {
    const char* name = TorchScriptOptimizationName(level);
    auto prepared = PrepareTorchScript(ConvBnRelu(), level, Probe(4));
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    if (level == Level::kAuto) {
      // Every level rewrites this module correctly and is timed.
      for (const char* timed :
           {"timed at batch 4: NONE ", ", OPTIMIZE_FOR_INFERENCE ",
            ", FREEZE_CHANNELS_LAST ", ", FREEZE "}) {
        EXPECT_THAT(prepared->summary, HasSubstr(timed));
      }
      EXPECT_THAT(prepared->summary, Not(HasSubstr("not used")));
    } else {
      EXPECT_EQ(prepared->applied, level) << name;
    }
    EXPECT_EQ(prepared->channels_last_input,
              prepared->applied == Level::kFreezeChannelsLast);
    EXPECT_THAT(prepared->summary,
                HasSubstr(TorchScriptOptimizationName(prepared->applied)));
    torch::Tensor batch = input;
    if (prepared->channels_last_input) {
      batch = input.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    EXPECT_LE(RelativeDifference(expected, Forward(prepared->module, batch)),
              1e-5)
        << name;
  }
}

TEST(TorchScriptOptimizerTest, AutoKeepsTheFastestMatchingLevel) {
  // The saved module and every rewrite but one do the work 300 times over.
  TorchScriptProbe probe = Probe(4);
  probe.height = 64;
  probe.width = 96;
  auto prepared = PrepareTorchScript(
      ConvBnRelu(300), Level::kAuto, probe,
      [](const torch::jit::Module& saved, Level level) {
        return level == Level::kFreezeChannelsLast ? ConvBnRelu()
                                                   : saved.clone();
      });
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->applied, Level::kFreezeChannelsLast) << prepared->summary;
  EXPECT_TRUE(prepared->channels_last_input);
}

TEST(TorchScriptOptimizerTest, FreezingFoldsTheParametersIntoConstants) {
  auto prepared = PrepareTorchScript(ConvBnRelu(), Level::kFreeze, Probe(2));
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->module.parameters().size(), 0u);
  EXPECT_EQ(prepared->module.buffers().size(), 0u);
}

// A rewrite whose output differs: the saved module's bias moved by `shift`.
TorchScriptRewriter ShiftingRewriter(Level wrong_level, float shift) {
  return [=](const torch::jit::Module& saved, Level level) {
    torch::jit::Module copy = saved.clone();
    if (level == wrong_level) {
      c10::NoGradGuard no_grad;
      copy.attr("bias").toTensor().add_(shift);
    }
    return copy;
  };
}

TEST(TorchScriptOptimizerTest, AutoSkipsARewriteThatChangesTheOutput) {
  auto prepared =
      PrepareTorchScript(ConvBnRelu(), Level::kAuto, Probe(4),
                         ShiftingRewriter(Level::kOptimizeForInference, 0.5));
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_NE(prepared->applied, Level::kOptimizeForInference);
  EXPECT_THAT(prepared->summary,
              HasSubstr("not used: OPTIMIZE_FOR_INFERENCE, on a batch of 1 "
                        "its logits differ from the saved module's"));

  // Neither rewrite matches: the module is served as saved.
  prepared = PrepareTorchScript(
      ConvBnRelu(), Level::kAuto, Probe(4),
      [](const torch::jit::Module&, Level) -> torch::jit::Module {
        throw std::runtime_error("no rewrite today");
      });
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->applied, Level::kNone);
  EXPECT_THAT(prepared->summary, HasSubstr("FREEZE, it fails: no rewrite"));
}

TEST(TorchScriptOptimizerTest, SmallDifferencesAreWithinTolerance) {
  // 1e-6 on logits of magnitude ~1 is float rounding, not a wrong rewrite.
  auto prepared =
      PrepareTorchScript(ConvBnRelu(), Level::kAuto, Probe(4),
                         ShiftingRewriter(Level::kOptimizeForInference, 1e-6));
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_THAT(prepared->summary, Not(HasSubstr("not used")));
}

TEST(TorchScriptOptimizerTest, AnExplicitLevelThatChangesTheOutputFails) {
  auto prepared = PrepareTorchScript(ConvBnRelu(), Level::kFreeze, Probe(4),
                                     ShiftingRewriter(Level::kFreeze, 0.5));
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(prepared.status().message(),
              HasSubstr("torchscript.optimization FREEZE cannot be used"));
  EXPECT_THAT(prepared.status().message(), HasSubstr("use AUTO"));
}

TEST(TorchScriptOptimizerTest, OutputThatIsNotLogitsIsRefused) {
  struct Case {
    const char* body;
    int64_t num_classes;
    const char* message;
  };
  for (const Case& c : {
           Case{"3", 4, "expected a logits tensor"},
           Case{"x[:, 0]", 4, "expected 1 x classes x height x width"},
           Case{"x[0:1]", 3, "on a batch of 4 the module returned logits"},
           Case{"x", 5, "produced 3 classes, configured for 5"},
           Case{"x.view(-1, 7)", 3, "fails on a batch of the configured"},
       }) {
    auto prepared = PrepareTorchScript(ModuleReturning(c.body), Level::kNone,
                                       Probe(4, c.num_classes));
    EXPECT_EQ(prepared.status().code(), absl::StatusCode::kInvalidArgument)
        << c.body;
    EXPECT_THAT(prepared.status().message(), HasSubstr(c.message)) << c.body;
  }
  // num_classes 0 takes any class count.
  EXPECT_TRUE(
      PrepareTorchScript(ModuleReturning("x"), Level::kAuto, Probe(4, 0)).ok());
}

TEST(TorchScriptOptimizerTest, ChecksBatchesOfOneAndTheLargestUpToEight) {
  for (int64_t max_batch : {1, 6, 100}) {
    torch::jit::Module recorder("Recorder");
    recorder.register_attribute("sizes", c10::ListType::ofInts(),
                                c10::List<int64_t>());
    recorder.define(R"(
def forward(self, x):
    self.sizes.append(x.size(0))
    return x
)");
    auto prepared =
        PrepareTorchScript(recorder, Level::kNone, Probe(max_batch, 3));
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    const std::vector<int64_t> sizes =
        prepared->module.attr("sizes").toIntList().vec();
    // Each size twice: the profiling executor optimizes on the second run.
    std::vector<int64_t> expected = {1, 1};
    if (max_batch > 1) {
      expected.insert(expected.end(), 2, std::min<int64_t>(max_batch, 8));
    }
    EXPECT_EQ(sizes, expected) << max_batch;
  }
}

}  // namespace
}  // namespace segserve
