// Helpers shared by the CGRSeg tests: the official key files, state
// descriptions, and the Python reference's outputs
// (tests/model/cgrseg_reference.py run by /usr/bin/python3 at test time).

#ifndef SEGSERVE_TESTS_MODEL_CGRSEG_TEST_UTIL_H_
#define SEGSERVE_TESTS_MODEL_CGRSEG_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace cgrseg_testing {

inline std::string KeysFile(const std::string& architecture) {
  return absl::StrCat(SEGSERVE_SOURCE_DIR, "/tests/data/", architecture,
                      ".keys.txt");
}

inline const char kReferenceScript[] =
    SEGSERVE_SOURCE_DIR "/tests/model/cgrseg_reference.py";

inline std::vector<std::string> DescribeState(const torch::nn::Module& module) {
  std::vector<std::string> lines;
  for (const auto& [name, tensor] : ModuleState(module)) {
    lines.push_back(DescribeTensor(name, tensor));
  }
  return lines;
}

inline int64_t CountParameters(const torch::nn::Module& module,
                               const std::string& prefix = "") {
  int64_t count = 0;
  for (const auto& item : module.named_parameters()) {
    if (absl::StartsWith(item.key(), prefix)) count += item.value().numel();
  }
  return count;
}

// Seeded values in every floating parameter and buffer (integer buffers,
// such as the backbone's bias index tables, keep theirs): conv and linear
// weights N(0, 1/fan_in), positive running variances and norm weights,
// N(0, 0.2) everything else (biases, layer scales, attention biases,
// embeddings), so that deep stacks stay finite and no default
// value hides a loading or wiring bug.
inline void RandomizeFloats(torch::nn::Module& module, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : ModuleState(module)) {
    if (!tensor.is_floating_point()) continue;
    if (absl::EndsWith(name, "running_var")) {
      tensor.uniform_(0.5, 1.5);
    } else if (tensor.dim() == 4 ||
               (tensor.dim() == 2 && absl::EndsWith(name, ".weight") &&
                !absl::EndsWith(name, "center_pos.weight"))) {
      const double fan_in = static_cast<double>(tensor[0].numel());
      tensor.normal_(0, 1.0 / std::sqrt(fan_in));
    } else if (tensor.dim() == 1 && absl::EndsWith(name, ".weight")) {
      tensor.uniform_(0.5, 1.5);
    } else {
      tensor.normal_(0, 0.2);
    }
  }
}

// Largest absolute difference relative to the largest expected magnitude.
inline float RelativeError(const torch::Tensor& actual,
                           const torch::Tensor& expected) {
  const float scale = expected.abs().max().item<float>();
  return (actual - expected).abs().max().item<float>() /
         (scale > 0 ? scale : 1.0f);
}

// The directory of cgrseg_reference.py's outputs (see
// testing_util::CachedPythonOutputDir).
inline std::string ReferenceDir() {
  static const std::string dir = testing_util::CachedPythonOutputDir(
      "cgrseg_reference", testing_util::ReadFile(kReferenceScript),
      absl::StrCat(kReferenceScript, " write"), "params.txt");
  return dir;
}

// Tests against the Python reference: skipped when /usr/bin/python3 cannot
// import torch.
class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing_util::PythonTorchAvailable()) {
      GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
    }
    dir_ = ReferenceDir();
    ASSERT_FALSE(dir_.empty()) << "cgrseg_reference.py failed";
  }

  // One case's record: "state.<key>", "feature.<i>", "reconstruction",
  // "coarse", "logits".
  std::map<std::string, torch::Tensor> Case(const std::string& name) const {
    std::map<std::string, torch::Tensor> record;
    absl::StatusOr<StateDict> read =
        ReadStateDict(absl::StrCat(dir_, "/", name, ".pt"));
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return record;
    for (auto& [key, tensor] : *read) record[key] = tensor;
    return record;
  }

  // The "state." entries without that prefix.
  static StateDict StateOf(const std::map<std::string, torch::Tensor>& record) {
    StateDict state;
    for (const auto& [key, tensor] : record) {
      if (absl::StartsWith(key, "state.")) {
        state.emplace_back(key.substr(6), tensor);
      }
    }
    return state;
  }

  static std::vector<torch::Tensor> FeaturesOf(
      const std::map<std::string, torch::Tensor>& record) {
    std::vector<torch::Tensor> features;
    for (int i = 0; i < 4; ++i) {
      features.push_back(record.at(absl::StrCat("feature.", i)));
    }
    return features;
  }

  std::string dir_;
};

}  // namespace cgrseg_testing
}  // namespace segserve

#endif  // SEGSERVE_TESTS_MODEL_CGRSEG_TEST_UTIL_H_
