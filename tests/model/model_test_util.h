// Helpers shared by the model tests: temporary paths, seeded random module
// state, and the Python-side fixtures (tests/model/make_fixtures.py run by
// /usr/bin/python3 with Debian's python3-torch).

#ifndef SEGSERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_
#define SEGSERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <torch/utils.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/preprocess_options.h"
#include "model/checkpoint.h"
#include "model/model_input.h"

namespace segserve {
namespace testing_util {

inline const char kKeysFile[] =
    SEGSERVE_SOURCE_DIR "/tests/data/sgcpnet.keys.txt";
inline const char kFixtureScript[] =
    SEGSERVE_SOURCE_DIR "/tests/model/make_fixtures.py";
inline const char kReferenceScript[] =
    SEGSERVE_SOURCE_DIR "/tests/model/sgcpnet_reference.py";

inline std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream file(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  return lines;
}

// A path in the test temp directory, unique to this process and test. The
// file, if made, is removed when the process exits.
inline std::string TempPath(const std::string& name) {
  struct Cleanup {
    ~Cleanup() {
      std::error_code error;
      for (const std::string& path : paths) {
        std::filesystem::remove(path, error);
      }
    }
    std::vector<std::string> paths;
  };
  static Cleanup cleanup;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string path =
      absl::StrCat(::testing::TempDir(), "segserve_", getpid(), "_",
                   info ? info->name() : "suite", "_", name);
  cleanup.paths.push_back(path);
  return path;
}

// Seeded random values in every parameter and buffer: conv weights scaled by
// fan-in, positive running variances, non-zero batch counters. Loading bugs
// cannot hide behind default values.
inline void Randomize(torch::nn::Module& module, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : ModuleState(module)) {
    if (!tensor.is_floating_point()) {
      tensor.fill_(static_cast<int64_t>(seed % 1000 + 1));
    } else if (absl::EndsWith(name, "running_var")) {
      tensor.uniform_(0.5, 1.5);
    } else if (tensor.dim() == 4) {
      const double fan_in = static_cast<double>(tensor[0].numel());
      tensor.normal_(0, std::sqrt(2.0 / fan_in));
    } else {
      tensor.uniform_(0.5, 1.0);
    }
  }
}

// 8-bit RGB images as a model's Infer takes them (N x H x W x 3), and the
// normalized N x 3 x H x W batch the model computes from them with
// TorchModelOptions' default mean and std, made here in torch apart from
// model/preprocess.cc: (pixel * (1 / std)) + (-mean / std) in float.
class TestImages {
 public:
  explicit TestImages(torch::Tensor pixels) : pixels_(pixels.contiguous()) {}
  // Seeded uniform random pixels.
  TestImages(int64_t n, int64_t height, int64_t width, uint64_t seed = 1)
      : pixels_(torch::randint(
            0, 256, {n, height, width, 3},
            torch::make_generator<at::CPUGeneratorImpl>(seed), torch::kUInt8)) {
  }

  std::vector<ModelInput> inputs() const {
    const int height = int(pixels_.size(1));
    const int width = int(pixels_.size(2));
    std::vector<ModelInput> inputs;
    for (int64_t i = 0; i < pixels_.size(0); ++i) {
      inputs.push_back({pixels_[i].data_ptr<uint8_t>(), {0, 0, width, height}});
    }
    return inputs;
  }

  torch::Tensor normalized() const {
    const torch::Tensor mean = torch::tensor(
        std::vector<float>(kImageNetMean.begin(), kImageNetMean.end()));
    const torch::Tensor std = torch::tensor(
        std::vector<float>(kImageNetStd.begin(), kImageNetStd.end()));
    const torch::Tensor x =
        pixels_.permute({0, 3, 1, 2}).to(torch::kFloat).contiguous();
    return x * (1 / std).view({1, 3, 1, 1}) + (-mean / std).view({1, 3, 1, 1});
  }

 private:
  torch::Tensor pixels_;
};

inline bool PythonTorchAvailable() {
  static const bool available =
      std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return available;
}

// Runs `/usr/bin/python3 -B <script_and_args> <dir>` once per `version` (text
// whose hash names the directory, e.g. the scripts' contents) and returns
// <build>/tests/model/<name>_<hash>, shared by all test processes: written
// to a private directory, then renamed into place. Empty when the script
// failed. `marker` is a file the script always writes last.
inline std::string CachedPythonOutputDir(const std::string& name,
                                         const std::string& version,
                                         const std::string& script_and_args,
                                         const std::string& marker) {
  const std::string final_dir =
      absl::StrCat(SEGSERVE_BINARY_DIR, "/tests/model/", name, "_",
                   absl::Hex(std::hash<std::string>{}(version)));
  std::error_code error;
  if (std::filesystem::exists(final_dir + "/" + marker, error)) {
    return final_dir;
  }
  const std::string scratch = absl::StrCat(final_dir, ".tmp", getpid());
  std::filesystem::create_directories(scratch, error);
  const std::string command =
      absl::StrCat("/usr/bin/python3 -B ", script_and_args, " ", scratch);
  if (std::system(command.c_str()) != 0) {
    std::filesystem::remove_all(scratch, error);
    return std::string();
  }
  std::filesystem::rename(scratch, final_dir, error);
  // Another process may have won the race; its copy is as good.
  if (error) std::filesystem::remove_all(scratch, error);
  return final_dir;
}

// The directory holding make_fixtures.py's outputs (see
// CachedPythonOutputDir).
inline std::string PythonFixtureDir() {
  static const std::string dir = CachedPythonOutputDir(
      "python_fixtures", ReadFile(kFixtureScript) + ReadFile(kReferenceScript),
      absl::StrCat(kFixtureScript, " write"), "expected.pt");
  return dir;
}

// Tests that need the Python fixtures: skipped when /usr/bin/python3 cannot
// import torch.
class PythonFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PythonTorchAvailable()) {
      GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
    }
    dir_ = PythonFixtureDir();
    ASSERT_FALSE(dir_.empty()) << "make_fixtures.py failed";
    absl::StatusOr<StateDict> expected =
        ReadStateDict(absl::StrCat(dir_, "/expected.pt"));
    ASSERT_TRUE(expected.ok()) << expected.status();
    for (auto& [name, tensor] : *expected) expected_[name] = tensor;
  }

  std::string Fixture(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }

  std::string dir_;
  std::map<std::string, torch::Tensor> expected_;
};

}  // namespace testing_util
}  // namespace segserve

#endif  // SEGSERVE_TESTS_MODEL_MODEL_TEST_UTIL_H_
