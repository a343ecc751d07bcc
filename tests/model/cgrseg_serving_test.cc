// CGRSeg through the serving path (LoadTorchModel + Infer) and through
// segtool (run as a user would, SEGTOOL_PATH).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/cgrseg.h"
#include "model/checkpoint.h"
#include "model/torch_model.h"
#include "opencv2/core.hpp"
#include "tests/model/cgrseg_test_util.h"
#include "tests/model/model_test_util.h"
#include "tests/model/segtool_runner.h"

namespace segserve {
namespace {

namespace F = torch::nn::functional;
using cgrseg_testing::RandomizeFloats;
using cgrseg_testing::RelativeError;
using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::TempPath;
using testing_util::TestImages;
using Classifier = TorchModelOptions::Classifier;

// Saves a seeded, randomized CGRSeg-T; returns its path.
std::string SaveCgrSegT(CgrSeg& net, uint64_t seed, const std::string& name) {
  RandomizeFloats(*net, seed);
  const std::string path = TempPath(name);
  EXPECT_TRUE(SaveStateDict(ModuleState(*net), path).ok());
  return path;
}

TorchModelOptions Options(const std::string& architecture,
                          Classifier classifier, const std::string& weights,
                          int height, int width) {
  TorchModelOptions options;
  options.architecture = architecture;
  options.classifier = classifier;
  options.num_classes = 150;
  options.weights_path = weights;
  options.input_height = height;
  options.input_width = width;
  return options;
}

torch::Tensor ResizedLogits(CgrSeg& net, const torch::Tensor& batch) {
  c10::InferenceMode inference_mode;
  net->eval();
  return F::interpolate(
      net->forward(batch),
      F::InterpolateFuncOptions()
          .size(std::vector<int64_t>{batch.size(2), batch.size(3)})
          .mode(torch::kBilinear)
          .align_corners(false));
}

// Pixels whose label is not an argmax of `resized` (C x H x W), allowing
// ties within float rounding.
int64_t WrongLabels(const cv::Mat& labels, const torch::Tensor& resized) {
  const torch::Tensor ids =
      torch::from_blob(labels.data, {labels.rows, labels.cols}, torch::kUInt8)
          .to(torch::kLong);
  const torch::Tensor best = std::get<0>(resized.max(0));
  const torch::Tensor chosen = resized.gather(0, ids.unsqueeze(0)).squeeze(0);
  return ((best - chosen) > 1e-4 * (1 + best.abs())).sum().item<int64_t>();
}

TEST(CgrSegServingTest, BuiltinCgrSegTLabelsAreArgmaxOfResizedLogits) {
  CgrSeg net(CgrSegVariant::kT, CgrSegClassifier::kDpg);
  const std::string path = SaveCgrSegT(net, 1, "t.pt");
  auto model =
      LoadTorchModel(Options("cgrseg_t", Classifier::kDefault, path, 64, 64));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->parameter_count(), 9364647);
  const TestImages images(2, 64, 64);
  auto outputs = (*model)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  ASSERT_EQ(outputs->size(), 2u);
  const torch::Tensor resized = ResizedLogits(net, images.normalized());
  for (int i = 0; i < 2; ++i) {
    const InferenceOutput& output = (*outputs)[i];
    ASSERT_EQ(output.labels.type(), CV_8UC1);
    ASSERT_EQ(output.labels.size(), cv::Size(64, 64));
    EXPECT_EQ(WrongLabels(output.labels, resized[i]), 0);
    EXPECT_EQ(output.confidence.size(), cv::Size(64, 64));
  }
}

TEST(CgrSegServingTest, SsaClassifierSelectsTheSsaHead) {
  CgrSeg net(CgrSegVariant::kT, CgrSegClassifier::kSsa);
  const std::string path = SaveCgrSegT(net, 2, "t_ssa.pt");
  for (const auto& [architecture, classifier] :
       {std::pair<std::string, Classifier>{"cgrseg_t", Classifier::kSsa},
        {"cgrseg_t_ssa", Classifier::kDefault}}) {
    auto model =
        LoadTorchModel(Options(architecture, classifier, path, 64, 96));
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->parameter_count(), 9483302);
    const TestImages images(1, 64, 96);
    auto outputs = (*model)->Infer(images.inputs(), {});
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    EXPECT_EQ(WrongLabels((*outputs)[0].labels,
                          ResizedLogits(net, images.normalized())[0]),
              0);
  }
  // DPG weights are not an SSA checkpoint, and the other way round.
  auto model =
      LoadTorchModel(Options("cgrseg_t", Classifier::kDefault, path, 64, 96));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("missing key(s): decode_head.lgc"));
}

TEST(CgrSegServingTest, BadCombinationsAreRefused) {
  CgrSeg net(CgrSegVariant::kT, CgrSegClassifier::kDpg);
  const std::string path = SaveCgrSegT(net, 3, "t.pt");
  auto model =
      LoadTorchModel(Options("sgcpnet", Classifier::kSsa, path, 64, 64));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("cgrseg_* architectures only"));

  model =
      LoadTorchModel(Options("cgrseg_t_ssa", Classifier::kDpg, path, 64, 64));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);

  model =
      LoadTorchModel(Options("cgrseg_t", Classifier::kDefault, path, 64, 80));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("multiple of 32"));

  model =
      LoadTorchModel(Options("cgrseg_x", Classifier::kDefault, path, 64, 64));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("allowed: sgcpnet, cgrseg_t, cgrseg_b, cgrseg_l"));
}

using Result = testing_util::SegtoolResult;
using testing_util::RunSegtool;

TEST(CgrSegSegtoolTest, KeysPrintTheOfficialKeysFiles) {
  for (const char* arch : {"cgrseg_t", "cgrseg_t_ssa"}) {
    const Result result = RunSegtool(absl::StrCat("keys --arch ", arch));
    EXPECT_EQ(result.exit_code, 0);
    EXPECT_EQ(result.output, ReadFile(cgrseg_testing::KeysFile(arch))) << arch;
  }
}

TEST(CgrSegSegtoolTest, InfoPrintsParametersAndMacs) {
  const Result result = RunSegtool("info --arch cgrseg_t");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("parameters: 9364647\n"
                                       "parameters (backbone): 5748360\n"
                                       "parameters (head): 3616287\n"));
  EXPECT_THAT(result.output, HasSubstr("input: 512 x 512\n"));
  EXPECT_THAT(result.output, HasSubstr("(3.945 G)"));

  const Result small = RunSegtool(
      "info --arch cgrseg_b_ssa --num_classes 19 --height 64 "
      "--width 96");
  EXPECT_EQ(small.exit_code, 0);
  EXPECT_THAT(small.output, HasSubstr("classes: 19\n"));
  EXPECT_THAT(small.output, HasSubstr("input: 64 x 96\n"));

  const Result odd = RunSegtool("info --arch cgrseg_t --height 100");
  EXPECT_EQ(odd.exit_code, 1);
  EXPECT_THAT(odd.output, HasSubstr("multiples of 32"));
}

// init -> infer: the logits equal the in-process forward on the same
// weights, and output_full is their bilinear resize to the input.
TEST(CgrSegSegtoolTest, InferWritesHeadAndFullResolutionLogits) {
  const std::string weights = TempPath("init.pt");
  const std::string input_path = TempPath("x.pt");
  const std::string output_path = TempPath("y.pt");
  ASSERT_EQ(RunSegtool(absl::StrCat("init --arch cgrseg_t_ssa --seed 5 "
                                    "--num_classes 7 --output ",
                                    weights))
                .exit_code,
            0);
  const torch::Tensor input = torch::randn({2, 3, 64, 96});
  ASSERT_TRUE(SaveStateDict({{"input", input}}, input_path).ok());
  const Result result = RunSegtool(absl::StrCat(
      "infer --arch cgrseg_t_ssa --num_classes 7 --weights ", weights,
      " --input ", input_path, " --output ", output_path));
  ASSERT_EQ(result.exit_code, 0) << result.output;

  absl::StatusOr<StateDict> written = ReadStateDict(output_path);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 2u);
  EXPECT_EQ((*written)[0].first, "output");
  EXPECT_EQ((*written)[1].first, "output_full");
  const torch::Tensor output = (*written)[0].second;
  const torch::Tensor full = (*written)[1].second;
  EXPECT_EQ(output.sizes(), (std::vector<int64_t>{2, 7, 8, 12}));
  EXPECT_EQ(full.sizes(), (std::vector<int64_t>{2, 7, 64, 96}));

  CgrSeg net(CgrSegVariant::kT, CgrSegClassifier::kSsa, 7);
  ASSERT_TRUE(LoadStateDictFile(weights, net.get()).ok());
  EXPECT_LE(RelativeError(output,
                          [&] {
                            c10::InferenceMode inference_mode;
                            net->eval();
                            return net->forward(input);
                          }()),
            1e-5);
  EXPECT_LE(RelativeError(full, ResizedLogits(net, input)), 1e-5);
}

TEST(CgrSegSegtoolTest, InferUsageAndInputErrors) {
  Result result = RunSegtool("infer --arch cgrseg_t --weights w.pt");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("infer needs --input"));

  result = RunSegtool("keys --arch cgrseg_x");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("cgrseg_l_ssa"));

  const std::string weights = TempPath("init.pt");
  ASSERT_EQ(RunSegtool(absl::StrCat("init --arch cgrseg_t --seed 1 --output ",
                                    weights))
                .exit_code,
            0);
  const std::string input_path = TempPath("x.pt");
  ASSERT_TRUE(
      SaveStateDict({{"image", torch::zeros({1, 3, 32, 32})}}, input_path)
          .ok());
  result = RunSegtool(absl::StrCat("infer --arch cgrseg_t --weights ", weights,
                                   " --input ", input_path, " --output ",
                                   TempPath("y.pt")));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("has no key \"input\""));
}

}  // namespace
}  // namespace segserve
