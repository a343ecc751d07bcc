#include "model/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/sgcpnet.h"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
using testing_util::kFixtureScript;
using testing_util::kKeysFile;
using testing_util::PythonTorchAvailable;
using testing_util::Randomize;
using testing_util::ReadFile;
using testing_util::TempPath;

// Tests that need the Python fixtures (skipped without python3-torch).
using CheckpointPythonTest = testing_util::PythonFixtureTest;

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary);
  file << contents;
}

void WriteIValue(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  WriteFile(path, std::string(bytes.begin(), bytes.end()));
}

torch::Tensor Forward(SgcpNet& net, const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  return net->forward(input);
}

void ExpectStatesEqual(torch::nn::Module& a, torch::nn::Module& b) {
  const StateDict state_a = ModuleState(a);
  const StateDict state_b = ModuleState(b);
  ASSERT_EQ(state_a.size(), state_b.size());
  for (size_t i = 0; i < state_a.size(); ++i) {
    EXPECT_EQ(state_a[i].first, state_b[i].first);
    EXPECT_TRUE(torch::equal(state_a[i].second, state_b[i].second))
        << state_a[i].first;
  }
}

TEST(CheckpointTest, SaveLoadRoundTripGivesIdenticalOutputs) {
  SgcpNet saved;
  Randomize(*saved, 1);
  const std::string path = TempPath("model.pt");
  ASSERT_TRUE(SaveStateDict(ModuleState(*saved), path).ok());

  SgcpNet loaded;
  const absl::Status status = LoadStateDictFile(path, loaded.get());
  ASSERT_TRUE(status.ok()) << status;
  ExpectStatesEqual(*saved, *loaded);

  saved->eval();
  loaded->eval();
  const torch::Tensor input = torch::randn({1, 3, 64, 96});
  EXPECT_TRUE(torch::equal(Forward(saved, input), Forward(loaded, input)));
}

TEST(CheckpointTest, ReadStateDictKeepsOrderShapesAndDtypes) {
  SgcpNet net;
  Randomize(*net, 2);
  const std::string path = TempPath("model.pt");
  ASSERT_TRUE(SaveStateDict(ModuleState(*net), path).ok());
  absl::StatusOr<StateDict> read = ReadStateDict(path);
  ASSERT_TRUE(read.ok()) << read.status();
  const StateDict original = ModuleState(*net);
  ASSERT_EQ(read->size(), original.size());
  for (size_t i = 0; i < original.size(); ++i) {
    EXPECT_EQ(DescribeTensor((*read)[i].first, (*read)[i].second),
              DescribeTensor(original[i].first, original[i].second));
  }
  EXPECT_EQ(read->back().first, "classifier.bias");
  // num_batches_tracked keeps its int64 value.
  EXPECT_EQ((*read)[5].first, "l1.1.num_batches_tracked");
  EXPECT_EQ((*read)[5].second.item<int64_t>(), 3);
}

TEST(CheckpointTest, MissingKeyIsNamedAndNothingIsCopied) {
  SgcpNet source;
  Randomize(*source, 3);
  StateDict state = ModuleState(*source);
  state.erase(std::find_if(state.begin(), state.end(), [](const auto& item) {
    return item.first == "sgcp.td.p3_w1";
  }));
  SgcpNet target;
  const torch::Tensor before = ModuleState(*target)[0].second.clone();
  const absl::Status status =
      LoadStateDict(state, "weights/model.pt", target.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("weights/model.pt"));
  EXPECT_THAT(status.message(), HasSubstr("1 missing key(s): sgcp.td.p3_w1"));
  EXPECT_TRUE(torch::equal(ModuleState(*target)[0].second, before));
}

TEST(CheckpointTest, UnexpectedKeyIsNamed) {
  SgcpNet net;
  StateDict state = ModuleState(*net);
  state.emplace_back("decode_head.extra.weight", torch::zeros({3}));
  const absl::Status status = LoadStateDict(state, "model.pt", net.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("1 unexpected key(s): decode_head.extra.weight"));
}

TEST(CheckpointTest, MisShapedKeyIsNamedWithBothShapes) {
  SgcpNet net;
  StateDict state = ModuleState(*net);
  state.back().second = torch::zeros({18});
  const absl::Status status = LoadStateDict(state, "model.pt", net.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("1 mis-shaped key(s): classifier.bias (file (18,), "
                        "model (19,))"));
}

TEST(CheckpointTest, EveryProblemIsReportedAtOnce) {
  SgcpNet net;
  StateDict state = ModuleState(*net);
  state.erase(state.begin());
  state.back().second = torch::zeros({2});
  state.emplace_back("extra", torch::zeros({1}));
  const std::string message(
      LoadStateDict(state, "model.pt", net.get()).message());
  EXPECT_THAT(message, HasSubstr("missing key(s): l1.0.weight"));
  EXPECT_THAT(message, HasSubstr("unexpected key(s): extra"));
  EXPECT_THAT(message, HasSubstr("mis-shaped key(s): classifier.bias"));
}

TEST(CheckpointTest, LongListsAreShortened) {
  SgcpNet net;
  const absl::Status status = LoadStateDict({}, "empty.pt", net.get());
  EXPECT_THAT(status.message(), HasSubstr("476 missing key(s)"));
  EXPECT_THAT(status.message(), HasSubstr("(464 more)"));
}

TEST(CheckpointTest, DataParallelPrefixGetsAHint) {
  SgcpNet net;
  StateDict state;
  for (auto& [name, tensor] : ModuleState(*net)) {
    state.emplace_back("module." + name, tensor);
  }
  const absl::Status status = LoadStateDict(state, "model.pt", net.get());
  EXPECT_THAT(status.message(), HasSubstr("strip the DataParallel prefix"));
}

TEST(CheckpointTest, DoubleValuesAreConvertedToFloat) {
  SgcpNet source;
  Randomize(*source, 4);
  StateDict state;
  for (auto& [name, tensor] : ModuleState(*source)) {
    state.emplace_back(
        name, tensor.is_floating_point() ? tensor.to(torch::kDouble) : tensor);
  }
  SgcpNet target;
  ASSERT_TRUE(LoadStateDict(state, "model.pt", target.get()).ok());
  ExpectStatesEqual(*source, *target);
}

TEST(CheckpointTest, MissingFileIsNotFound) {
  SgcpNet net;
  const std::string path = TempPath("absent.pt");
  const absl::Status status = LoadStateDictFile(path, net.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_EQ(DetectModelFileFormat(path).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, OtherFilesAreExplained) {
  const std::string text = TempPath("text.pt");
  WriteFile(text, "hello, world");
  absl::StatusOr<StateDict> read = ReadStateDict(text);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("not a PyTorch file"));

  const std::string legacy = TempPath("legacy.pt");
  WriteFile(legacy, std::string("\x80\x02\x8a\x0a", 4) + "rest");
  read = ReadStateDict(legacy);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("legacy torch.save format"));
}

TEST(CheckpointTest, TruncatedArchiveIsAnError) {
  SgcpNet net;
  const std::string path = TempPath("model.pt");
  ASSERT_TRUE(SaveStateDict(ModuleState(*net), path).ok());
  const std::string bytes = ReadFile(path);
  WriteFile(path, bytes.substr(0, bytes.size() / 2));
  const absl::Status status = LoadStateDictFile(path, net.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(CheckpointTest, NestedCheckpointDictIsExplained) {
  c10::Dict<std::string, c10::Dict<std::string, torch::Tensor>> checkpoint;
  c10::Dict<std::string, torch::Tensor> inner;
  inner.insert("l1.0.weight", torch::zeros({1}));
  checkpoint.insert("segmenter", inner);
  const std::string path = TempPath("checkpoint.pt");
  WriteIValue(path, checkpoint);
  absl::StatusOr<StateDict> read = ReadStateDict(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr("torch.save(ckpt['segmenter'], path)"));
}

TEST(CheckpointTest, NonTensorValueIsNamed) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("l1.0.weight", torch::zeros({1}));
  dict.insert("epoch", int64_t{3});
  const std::string path = TempPath("values.pt");
  WriteIValue(path, dict);
  absl::StatusOr<StateDict> read = ReadStateDict(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr("key 'epoch' holds a int, expected a tensor"));
}

TEST(CheckpointTest, SharedStoragesAndViewsAreRead) {
  const torch::Tensor base = torch::arange(12, torch::kFloat);
  c10::Dict<std::string, torch::Tensor> dict;
  dict.insert("whole", base.view({3, 4}));
  dict.insert("column", base.view({3, 4}).select(1, 1));
  const std::string path = TempPath("views.pt");
  WriteIValue(path, dict);
  absl::StatusOr<StateDict> read = ReadStateDict(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_TRUE(torch::equal((*read)[0].second, base.view({3, 4})));
  EXPECT_TRUE(
      torch::equal((*read)[1].second, torch::tensor({1.0f, 5.0f, 9.0f})));
}

TEST(CheckpointTest, DetectsTorchScriptArchives) {
  torch::jit::Module module("Scale");
  module.register_parameter("scale", torch::ones({1}), false);
  module.define("def forward(self, x):\n  return x * self.scale\n");
  const std::string script = TempPath("module.ts");
  module.save(script);
  absl::StatusOr<ModelFileFormat> format = DetectModelFileFormat(script);
  ASSERT_TRUE(format.ok()) << format.status();
  EXPECT_EQ(*format, ModelFileFormat::kTorchScript);
  EXPECT_THAT(ReadStateDict(script).status().message(),
              HasSubstr("is a TorchScript archive"));

  SgcpNet net;
  const std::string weights = TempPath("model.pt");
  ASSERT_TRUE(SaveStateDict(ModuleState(*net), weights).ok());
  format = DetectModelFileFormat(weights);
  ASSERT_TRUE(format.ok()) << format.status();
  EXPECT_EQ(*format, ModelFileFormat::kStateDict);
}

TEST(CheckpointTest, DescribeTensorUsesPythonTupleSyntax) {
  EXPECT_EQ(DescribeTensor("a", torch::zeros({16, 3, 3, 3})),
            "a\t(16, 3, 3, 3)\tfloat32");
  EXPECT_EQ(DescribeTensor("b", torch::zeros({16})), "b\t(16,)\tfloat32");
  EXPECT_EQ(DescribeTensor("c", torch::tensor(int64_t{0})), "c\t()\tint64");
  EXPECT_EQ(DescribeTensor("d", torch::zeros({2}, torch::kHalf)),
            "d\t(2,)\tfloat16");
}

// Files written by Python's torch.save: model.state_dict() (an OrderedDict
// with _metadata), a plain dict with pickle protocol 4, and a dict of
// nn.Parameters. All three read back to the same tensors and load strictly.
TEST_F(CheckpointPythonTest, PythonStateDictsLoadStrictly) {
  SgcpNet reference;
  ASSERT_TRUE(
      LoadStateDictFile(Fixture("ref_state_dict.pt"), reference.get()).ok());
  for (const char* file : {"ref_state_dict_p4.pt", "ref_parameters.pt"}) {
    absl::StatusOr<StateDict> read = ReadStateDict(Fixture(file));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->size(), 476u);
    SgcpNet net;
    const absl::Status status = LoadStateDict(*read, file, net.get());
    ASSERT_TRUE(status.ok()) << status;
    ExpectStatesEqual(*reference, *net);
  }
}

TEST_F(CheckpointPythonTest, SavedStateDictLoadsInPython) {
  SgcpNet net;
  Randomize(*net, 5);
  const std::string path = TempPath("model.pt");
  ASSERT_TRUE(SaveStateDict(ModuleState(*net), path).ok());
  const std::string command = absl::StrCat(
      "/usr/bin/python3 -B ", kFixtureScript, " check ", path, " ", kKeysFile);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace segserve
