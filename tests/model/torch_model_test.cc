#include "model/torch_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/checkpoint.h"
#include "model/device_normalize.h"
#include "model/preprocess.h"
#include "model/sgcpnet.h"
#include "opencv2/core.hpp"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace {

namespace F = torch::nn::functional;
using ::testing::HasSubstr;
using testing_util::Randomize;
using testing_util::TempPath;
using testing_util::TestImages;
using Platform = TorchModelOptions::Platform;
using Precision = TorchModelOptions::Precision;

// Tests that need the Python fixtures (skipped without python3-torch).
using TorchModelPythonTest = testing_util::PythonFixtureTest;

TorchModelOptions Options(Platform platform, const std::string& weights,
                          int height, int width, int num_classes) {
  TorchModelOptions options;
  options.platform = platform;
  options.weights_path = weights;
  options.input_height = height;
  options.input_width = width;
  options.num_classes = num_classes;
  return options;
}

// Saves a seeded, randomized SgcpNet; returns its path.
std::string SaveModel(SgcpNet& net, uint64_t seed) {
  Randomize(*net, seed);
  const std::string path = TempPath("model.pt");
  EXPECT_TRUE(SaveStateDict(ModuleState(*net), path).ok());
  return path;
}

// Logits resized bilinearly to the input size, computed here independently
// of TorchModel: N x C x H x W.
torch::Tensor ResizedLogits(SgcpNet& net, const torch::Tensor& batch) {
  c10::InferenceMode inference_mode;
  net->eval();
  return F::interpolate(
      net->forward(batch),
      F::InterpolateFuncOptions()
          .size(std::vector<int64_t>{batch.size(2), batch.size(3)})
          .mode(torch::kBilinear)
          .align_corners(false));
}

torch::Tensor LabelsOf(const cv::Mat& labels) {
  const auto dtype = labels.type() == CV_8UC1 ? torch::kUInt8 : torch::kInt16;
  return torch::from_blob(labels.data, {labels.rows, labels.cols}, dtype)
      .to(torch::kLong);
}

// Pixels whose label is not an argmax of `resized` (C x H x W); a label whose
// logit ties the maximum within float rounding counts as one.
int64_t WrongLabels(const cv::Mat& labels, const torch::Tensor& resized) {
  const torch::Tensor best = std::get<0>(resized.max(0));
  const torch::Tensor chosen =
      resized.gather(0, LabelsOf(labels).unsqueeze(0)).squeeze(0);
  return ((best - chosen) > 1e-4 * (1 + best.abs())).sum().item<int64_t>();
}

int64_t DifferentLabels(const cv::Mat& labels, const torch::Tensor& expected) {
  return (LabelsOf(labels) != expected).sum().item<int64_t>();
}

TEST(TorchModelTest, BuiltinLabelsAreArgmaxOfResizedLogitsAtInputSize) {
  SgcpNet net;
  const std::string path = SaveModel(net, 1);
  absl::StatusOr<std::unique_ptr<SegmentationModel>> model =
      LoadTorchModel(Options(Platform::kBuiltin, path, 64, 96, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->device(), "cpu");
  EXPECT_EQ((*model)->parameter_count(), 607826);

  const TestImages images(2, 64, 96);
  absl::StatusOr<std::vector<InferenceOutput>> outputs =
      (*model)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  ASSERT_EQ(outputs->size(), 2u);

  const torch::Tensor resized = ResizedLogits(net, images.normalized());
  const torch::Tensor probabilities = torch::softmax(resized, 1);
  for (int i = 0; i < 2; ++i) {
    const InferenceOutput& output = (*outputs)[i];
    ASSERT_EQ(output.labels.type(), CV_8UC1);
    ASSERT_EQ(output.labels.rows, 64);
    ASSERT_EQ(output.labels.cols, 96);
    EXPECT_EQ(WrongLabels(output.labels, resized[i]), 0);
    EXPECT_LE(DifferentLabels(output.labels, resized[i].argmax(0)), 6);
    // Several classes appear: the weights are not degenerate.
    EXPECT_GT(std::get<0>(torch::_unique(LabelsOf(output.labels))).numel(), 1);

    ASSERT_EQ(output.confidence.type(), CV_8UC1);
    ASSERT_EQ(output.confidence.size(), output.labels.size());
    const torch::Tensor confidence =
        LabelsOf(output.confidence).to(torch::kFloat);
    const torch::Tensor expected =
        (std::get<0>(probabilities[i].max(0)) * 255).round();
    EXPECT_LE((confidence - expected).abs().max().item<float>(), 1);
    // The winner's probability is at least 1/19.
    EXPECT_GE(confidence.min().item<float>(), 13);
  }
}

TEST(TorchModelTest, ConfidenceIsEmptyUnlessAsked) {
  SgcpNet net;
  const std::string path = SaveModel(net, 2);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 32, 32, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(1, 32, 32);
  auto outputs = (*model)->Infer(images.inputs(), {});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_FALSE((*outputs)[0].labels.empty());
  EXPECT_TRUE((*outputs)[0].confidence.empty());
}

// The fused CPU pass (model/upsampled_argmax.h) against the unfused path on
// the same model: the labels of nearly every pixel equal, confidence within 1.
TEST(TorchModelTest, FusedMaskUpsamplingAgreesWithTheUnfusedPath) {
  SgcpNet net;
  const std::string path = SaveModel(net, 4);
  TorchModelOptions options = Options(Platform::kBuiltin, path, 128, 160, 19);
  auto fused = LoadTorchModel(options);
  options.fused_mask_upsampling = false;
  auto unfused = LoadTorchModel(options);
  ASSERT_TRUE(fused.ok()) << fused.status();
  ASSERT_TRUE(unfused.ok()) << unfused.status();
  const TestImages images(3, 128, 160);
  auto fast = (*fused)->Infer(images.inputs(), {.confidence = true});
  auto slow = (*unfused)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(fast.ok()) << fast.status();
  ASSERT_TRUE(slow.ok()) << slow.status();
  for (int i = 0; i < 3; ++i) {
    const torch::Tensor expected = LabelsOf((*slow)[i].labels);
    EXPECT_LE(DifferentLabels((*fast)[i].labels, expected), 2);
    const torch::Tensor confidence = LabelsOf((*fast)[i].confidence);
    EXPECT_LE((confidence - LabelsOf((*slow)[i].confidence))
                  .abs()
                  .max()
                  .item<int64_t>(),
              1);
  }
}

// What a blending step (overlapping tiles) needs: the FP32 logits at the
// input size, the same ones the labels come from.
TEST(TorchModelTest, LogitsAtTheInputSizeWhenAsked) {
  SgcpNet net;
  const std::string path = SaveModel(net, 2);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 32, 64, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(2, 32, 64);
  auto outputs = (*model)->Infer(images.inputs(), {.logits = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const torch::Tensor expected = ResizedLogits(net, images.normalized());
  for (int i = 0; i < 2; ++i) {
    const cv::Mat& logits = (*outputs)[i].logits;
    ASSERT_EQ(logits.dims, 3);
    ASSERT_EQ(logits.type(), CV_32F);
    EXPECT_EQ(logits.size[0], 19);
    EXPECT_EQ(logits.size[1], 32);
    EXPECT_EQ(logits.size[2], 64);
    const torch::Tensor actual =
        torch::from_blob(logits.data, {19, 32, 64}, torch::kFloat);
    EXPECT_LE((actual - expected[i]).abs().max().item<float>(), 1e-3);
    EXPECT_EQ(WrongLabels((*outputs)[i].labels, actual), 0);
  }
  auto plain = (*model)->Infer(images.inputs(), {});
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE((*plain)[0].logits.empty());
}

TEST(TorchModelTest, InputSizesThatAreNotMultiplesOf32Work) {
  SgcpNet net;
  const std::string path = SaveModel(net, 3);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 70, 90, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(1, 70, 90);
  auto outputs = (*model)->Infer(images.inputs(), {});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_EQ((*outputs)[0].labels.size(), cv::Size(90, 70));
  EXPECT_EQ(WrongLabels((*outputs)[0].labels,
                        ResizedLogits(net, images.normalized())[0]),
            0);
}

TEST(TorchModelTest, MoreThan256ClassesGiveSixteenBitLabels) {
  SgcpNet net(300);
  const std::string path = SaveModel(net, 4);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 32, 64, 300));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(1, 32, 64);
  auto outputs = (*model)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const cv::Mat& labels = (*outputs)[0].labels;
  ASSERT_EQ(labels.type(), CV_16UC1);
  EXPECT_EQ(WrongLabels(labels, ResizedLogits(net, images.normalized())[0]), 0);
  EXPECT_LT(LabelsOf(labels).max().item<int64_t>(), 300);
  EXPECT_EQ((*outputs)[0].confidence.type(), CV_8UC1);
}

TEST(TorchModelTest, UnknownArchitectureListsTheAllowedOnes) {
  SgcpNet net;
  TorchModelOptions options =
      Options(Platform::kBuiltin, SaveModel(net, 5), 32, 32, 19);
  options.architecture = "cgrseg_x";
  auto model = LoadTorchModel(options);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("unknown builtin architecture 'cgrseg_x'; allowed: "
                        "sgcpnet"));
}

TEST(TorchModelTest, HalfPrecisionNeedsCuda) {
  SgcpNet net;
  TorchModelOptions options =
      Options(Platform::kBuiltin, SaveModel(net, 6), 32, 32, 19);
  for (Precision precision : {Precision::kFp16, Precision::kBf16}) {
    options.precision = precision;
    auto model = LoadTorchModel(options);
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(model.status().message(), HasSubstr("need a CUDA device"));
  }
}

TEST(TorchModelTest, DeviceNamesAreChecked) {
  SgcpNet net;
  TorchModelOptions options =
      Options(Platform::kBuiltin, SaveModel(net, 7), 32, 32, 19);
  options.device = "tpu:0";
  auto model = LoadTorchModel(options);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("allowed: cpu, cuda"));

  if (CudaDeviceCount() > 0) return;
  options.device = "cuda:0";
  model = LoadTorchModel(options);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("no CUDA device"));
}

TEST(TorchModelTest, CudaInferenceMatchesCpu) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  SgcpNet net;
  TorchModelOptions options =
      Options(Platform::kBuiltin, SaveModel(net, 8), 64, 96, 19);
  options.device = "cuda:0";
  auto model = LoadTorchModel(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->device(), "cuda:0");
  const TestImages images(2, 64, 96);
  auto outputs = (*model)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  const torch::Tensor resized = ResizedLogits(net, images.normalized());
  for (int i = 0; i < 2; ++i) {
    EXPECT_LE(DifferentLabels((*outputs)[i].labels, resized[i].argmax(0)),
              64 * 96 / 100);
  }
  options.precision = Precision::kFp16;
  model = LoadTorchModel(options);
  ASSERT_TRUE(model.ok()) << model.status();
  outputs = (*model)->Infer(images.inputs(), {.confidence = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
}

TEST(TorchModelTest, MissingWeightsAreNotFound) {
  auto model = LoadTorchModel(
      Options(Platform::kBuiltin, TempPath("absent.pt"), 32, 32, 19));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr("absent.pt"));
}

TEST(TorchModelTest, WeightsForOtherClassCountNameFileAndKeys) {
  SgcpNet net;
  const std::string path = SaveModel(net, 9);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 32, 32, 5));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr(path));
  EXPECT_THAT(model.status().message(),
              HasSubstr("classifier.weight (file (19, 64, 1, 1), model "
                        "(5, 64, 1, 1))"));
}

TEST(TorchModelTest, StateDictIsNotATorchScriptModule) {
  SgcpNet net;
  auto model = LoadTorchModel(
      Options(Platform::kTorchScript, SaveModel(net, 10), 32, 32, 19));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("holds a state dict"));
}

TEST(TorchModelTest, BadBatchesAreRejected) {
  SgcpNet net;
  auto model = LoadTorchModel(
      Options(Platform::kBuiltin, SaveModel(net, 11), 32, 32, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->Infer({}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<ModelInput> null_input = {{nullptr, {0, 0, 32, 32}}};
  EXPECT_EQ((*model)->Infer(null_input, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const TestImages images(1, 32, 32);
  std::vector<ModelInput> outside = images.inputs();
  outside[0].region = {8, 0, 32, 32};
  const absl::Status refused = (*model)->Infer(outside, {}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(),
              HasSubstr("content region 32x32 at (8, 0) does not fit the "
                        "32x32 input"));
}

// A letterboxed or short-tile input: outside its region the normalized
// input is zero whatever the bytes there hold, and inside it the pixels are
// normalized as everywhere.
TEST(TorchModelTest, OutsideTheContentRegionTheInputIsZero) {
  SgcpNet net;
  const std::string path = SaveModel(net, 12);
  auto model = LoadTorchModel(Options(Platform::kBuiltin, path, 32, 64, 19));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(1, 32, 64);
  std::vector<ModelInput> inputs = images.inputs();
  inputs[0].region = {16, 4, 40, 20};
  auto outputs = (*model)->Infer(inputs, {.logits = true});
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  torch::Tensor expected = torch::zeros({1, 3, 32, 64});
  expected.narrow(2, 4, 20).narrow(3, 16, 40).copy_(
      images.normalized().narrow(2, 4, 20).narrow(3, 16, 40));
  const torch::Tensor actual =
      torch::from_blob((*outputs)[0].logits.data, {19, 32, 64}, torch::kFloat);
  EXPECT_LE(
      (actual - ResizedLogits(net, expected)[0]).abs().max().item<float>(),
      1e-4);
}

// What a GPU runs to normalize a batch of bytes, run here on the CPU: the
// same floats, bit for bit, as the CPU path's loop (model/preprocess.h).
TEST(TorchModelTest, DeviceNormalizationEqualsTheCpuLoop) {
  const TestImages images(2, 24, 40, 13);
  std::vector<ModelInput> inputs = images.inputs();
  inputs[1].region = {5, 3, 30, 17};
  const torch::Tensor bytes =
      torch::stack({torch::from_blob(const_cast<uint8_t*>(inputs[0].rgb),
                                     {24, 40, 3}, torch::kUInt8),
                    torch::from_blob(const_cast<uint8_t*>(inputs[1].rgb),
                                     {24, 40, 3}, torch::kUInt8)});
  const torch::Tensor on_device = NormalizeBytes(
      bytes, inputs,
      MakeNormalizeFactors(kImageNetMean, kImageNetStd, torch::kCPU));
  ASSERT_EQ(on_device.sizes(), (std::vector<int64_t>{2, 3, 24, 40}));
  for (int i = 0; i < 2; ++i) {
    std::vector<float> loop(3 * 24 * 40, -1.0f);
    Normalize(inputs[i].rgb, inputs[i].region, 40, 24, kImageNetMean,
              kImageNetStd, loop.data());
    const torch::Tensor expected =
        torch::from_blob(loop.data(), {3, 24, 40}, torch::kFloat);
    EXPECT_TRUE(torch::equal(on_device[i], expected)) << i;
  }
  EXPECT_EQ(on_device[1][0][2][10].item<float>(), 0.0f);  // Above the region.
  EXPECT_TRUE(torch::equal(on_device[0], images.normalized()[0]));
}

// A TorchScript module made here: logits = the input's channels times a
// parameter, at half resolution, returned in the shape given by `body`.
std::string SaveScriptedModule(const std::string& body) {
  torch::jit::Module module("Channels");
  module.register_parameter("scale", torch::full({1}, 2.0f), false);
  module.define(
      "def forward(self, x):\n"
      "  y = (x * self.scale)[:, :, ::2, ::2]\n"
      "  return " +
      body + "\n");
  const std::string path = TempPath("module.ts");
  module.save(path);
  return path;
}

// What SaveScriptedModule's module gives for a 32 x 48 batch, resized back
// to the input size as Infer resizes it.
torch::Tensor ScriptedModuleLogits(const torch::Tensor& batch) {
  return F::interpolate((batch * 2).slice(2, 0, 32, 2).slice(3, 0, 48, 2),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{32, 48})
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

TEST(TorchModelTest, TorchScriptOutputsTensorTupleListOrDict) {
  const TestImages images(2, 32, 48);
  const torch::Tensor resized = ScriptedModuleLogits(images.normalized());
  for (const char* body : {"y", "(y, x)", "[y, x]", "{'aux': x, 'out': y}"}) {
    auto model = LoadTorchModel(
        Options(Platform::kTorchScript, SaveScriptedModule(body), 32, 48, 3));
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->parameter_count(), 1);
    auto outputs = (*model)->Infer(images.inputs(), {.confidence = true});
    ASSERT_TRUE(outputs.ok()) << body << ": " << outputs.status();
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(WrongLabels((*outputs)[i].labels, resized[i]), 0) << body;
    }
  }
}

TEST(TorchModelTest, TorchScriptOutputIsCheckedAtLoad) {
  auto model = LoadTorchModel(
      Options(Platform::kTorchScript, SaveScriptedModule("3"), 32, 48, 3));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("module.ts: "));
  EXPECT_THAT(model.status().message(), HasSubstr("expected a logits tensor"));

  model = LoadTorchModel(
      Options(Platform::kTorchScript, SaveScriptedModule("y"), 32, 48, 5));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("produced 3 classes, configured for 5"));

  // num_classes 0 accepts whatever the module produces.
  model = LoadTorchModel(
      Options(Platform::kTorchScript, SaveScriptedModule("y"), 32, 48, 0));
  ASSERT_TRUE(model.ok()) << model.status();
  const TestImages images(1, 32, 48);
  EXPECT_TRUE((*model)->Infer(images.inputs(), {}).ok());
}

// Every optimization level serves the same labels.
TEST(TorchModelTest, TorchScriptOptimizationLevelsServeTheSameLabels) {
  using Optimization = TorchModelOptions::TorchScriptOptimization;
  const TestImages images(3, 32, 48);
  const torch::Tensor resized = ScriptedModuleLogits(images.normalized());
  const std::string path = SaveScriptedModule("y");
  for (Optimization level :
       {Optimization::kAuto, Optimization::kNone, Optimization::kFreeze,
        Optimization::kFreezeChannelsLast,
        Optimization::kOptimizeForInference}) {
    TorchModelOptions options =
        Options(Platform::kTorchScript, path, 32, 48, 3);
    options.torchscript_optimization = level;
    options.max_batch_size = 4;
    auto model = LoadTorchModel(options);
    ASSERT_TRUE(model.ok()) << model.status();
    // Counted before freezing turns the parameter into a constant.
    EXPECT_EQ((*model)->parameter_count(), 1);
    auto outputs = (*model)->Infer(images.inputs(), {});
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(WrongLabels((*outputs)[i].labels, resized[i]), 0);
    }
  }
}

// The reference SGCPNet exported by Python (torch.jit.script) as a
// TorchScript module, and its weights as a state dict: Infer's labels for
// 8-bit images are the argmax of the module's output resized in Python, on
// the images normalized in Python.
TEST_F(TorchModelPythonTest, PythonTorchScriptLabelsMatchPythonArgmax) {
  const TestImages images(expected_.at("pixels"));
  const torch::Tensor input = images.normalized();
  const torch::Tensor resized = expected_.at("pixels_resized");
  const torch::Tensor labels = expected_.at("pixels_labels");
  struct Case {
    Platform platform;
    const char* file;
  };
  for (const Case& c : {Case{Platform::kTorchScript, "ref_model.ts"},
                        Case{Platform::kTorchScript, "ref_tuple.ts"},
                        Case{Platform::kTorchScript, "ref_dict.ts"},
                        Case{Platform::kBuiltin, "ref_state_dict.pt"},
                        Case{Platform::kBuiltin, "ref_model.ts"}}) {
    auto model = LoadTorchModel(
        Options(c.platform, Fixture(c.file), input.size(2), input.size(3), 19));
    ASSERT_TRUE(model.ok()) << c.file << ": " << model.status();
    EXPECT_EQ((*model)->parameter_count(), 607826) << c.file;
    auto outputs = (*model)->Infer(images.inputs(), {.confidence = true});
    ASSERT_TRUE(outputs.ok()) << c.file << ": " << outputs.status();
    for (int i = 0; i < input.size(0); ++i) {
      EXPECT_EQ(WrongLabels((*outputs)[i].labels, resized[i]), 0) << c.file;
      EXPECT_LE(DifferentLabels((*outputs)[i].labels, labels[i]), 6) << c.file;
    }
  }
}

}  // namespace
}  // namespace segserve
