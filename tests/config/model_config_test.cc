#include "config/model_config.h"

#include <string>
#include <vector>

#include "config/version_policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

constexpr char kValid[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 3
  class_names: [ "background", "disk", "ring" ]
  input { height: 256 width: 320 resize: LETTERBOX }
  max_batch_size: 8
  dynamic_batching {
    preferred_batch_size: [ 4, 8 ]
    max_queue_delay_us: 2000
  }
)pb";

absl::StatusOr<v1::ModelConfig> Parse(const std::string& text) {
  return ParseModelConfig(text, "repo/m/config.pbtxt", "m");
}

// Each bad config is refused, and the message names the file, the field
// and what is allowed.
void ExpectRefused(const std::string& text, const std::string& field,
                   const std::string& reason) {
  absl::StatusOr<v1::ModelConfig> config = Parse(text);
  ASSERT_FALSE(config.ok()) << text;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("repo/m/config.pbtxt"));
  EXPECT_THAT(message, HasSubstr(field));
  EXPECT_THAT(message, HasSubstr(reason));
}

TEST(ModelConfigTest, ValidConfigGetsDefaults) {
  absl::StatusOr<v1::ModelConfig> config = Parse(kValid);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "m");
  EXPECT_EQ(config->input().mean_size(), 3);
  EXPECT_FLOAT_EQ(config->input().std(0), 58.395f);
  EXPECT_EQ(config->dynamic_batching().priority_levels(), 1u);
  ASSERT_EQ(config->instance_group_size(), 1);
  EXPECT_EQ(config->instance_group(0).count(), 1u);
  EXPECT_EQ(config->version_policy().latest().num_versions(), 1u)
      << "Triton's and TF Serving's default: the latest version";
}

TEST(ModelConfigTest, VersionPolicySelectsVersions) {
  const std::vector<int64_t> on_disk = {1, 2, 5, 7};
  auto select = [&](const std::string& policy) {
    absl::StatusOr<v1::ModelConfig> config =
        Parse(std::string(kValid) + policy);
    EXPECT_TRUE(config.ok()) << config.status();
    return SelectVersions(*config, on_disk);
  };
  using ::testing::ElementsAre;
  EXPECT_THAT(select(""), ElementsAre(7));
  EXPECT_THAT(select("version_policy { latest { num_versions: 2 } }"),
              ElementsAre(5, 7));
  EXPECT_THAT(select("version_policy { latest { num_versions: 9 } }"),
              ElementsAre(1, 2, 5, 7));
  EXPECT_THAT(select("version_policy { all {} }"), ElementsAre(1, 2, 5, 7));
  EXPECT_THAT(select("version_policy { specific { versions: [ 5, 3, 1 ] } }"),
              ElementsAre(1, 3, 5))
      << "3 is not on disk: the repository reports it unavailable";
  absl::StatusOr<v1::ModelConfig> config = Parse(
      std::string(kValid) + "version_policy { specific { versions: 2 } }");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(DescribeVersionPolicy(*config), "specific 2");
}

TEST(ModelConfigTest, ClassNamesDefaultToNumbers) {
  auto config = Parse(R"pb(platform: BUILTIN
                           architecture: "sgcpnet"
                           num_classes: 2
                           input { height: 32 width: 32 })pb");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->class_names(),
              ::testing::ElementsAre("class_0", "class_1"));
  EXPECT_EQ(config->max_batch_size(), 1u);
}

TEST(ModelConfigTest, RefusesSyntaxErrorsWithLine) {
  ExpectRefused("platform: BUILTIN\nnum_classes: \"x\"", "line 2",
                "protobuf text format");
}

TEST(ModelConfigTest, RefusesUnknownEnumValue) {
  ExpectRefused("platform: ONNX", "line 1", "ONNX");
}

TEST(ModelConfigTest, RefusesBadFields) {
  const std::string base =
      "platform: BUILTIN architecture: \"sgcpnet\" num_classes: 3 "
      "input { height: 64 width: 64 } ";
  ExpectRefused("name: \"other\" " + base, "'name'", "directory name 'm'");
  ExpectRefused(base + "version_policy { latest { num_versions: 0 } }",
                "version_policy.latest.num_versions", "allowed 1..1000");
  ExpectRefused(base + "version_policy { specific {} }",
                "version_policy.specific.versions", "at least one version");
  ExpectRefused(base + "version_policy { specific { versions: -2 } }",
                "version_policy.specific.versions", "positive integers");
  ExpectRefused("num_classes: 3 input { height: 64 width: 64 }", "platform",
                "BUILTIN or TORCHSCRIPT");
  ExpectRefused(
      "platform: BUILTIN architecture: \"resnet\" num_classes: 3 "
      "input { height: 64 width: 64 }",
      "architecture", "sgcpnet, cgrseg_t");
  ExpectRefused(
      "platform: BUILTIN architecture: \"sgcpnet\" "
      "input { height: 64 width: 64 }",
      "num_classes", "1..65536");
  ExpectRefused(base + "class_names: [\"a\"]", "class_names",
                "exactly num_classes (3)");
  ExpectRefused(
      "platform: BUILTIN architecture: \"sgcpnet\" num_classes: 3 "
      "input { height: 100 width: 64 }",
      "input.height", "multiple of 32");
  ExpectRefused(
      "platform: BUILTIN architecture: \"sgcpnet\" num_classes: 3 "
      "input { width: 64 }",
      "input.height", "1..8192");
  const std::string head =
      "platform: BUILTIN architecture: \"sgcpnet\" num_classes: 3 ";
  ExpectRefused(head + "input { height: 64 width: 64 mean: [1, 2] }",
                "input.mean", "give 3");
  ExpectRefused(head + "input { height: 64 width: 64 std: [1, 0, 1] }",
                "input.std", "positive");
  ExpectRefused(
      base + "max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }",
      "preferred_batch_size", "1..max_batch_size (4)");
  ExpectRefused(base + "instance_group { kind: CPU gpus: 0 }",
                "instance_group.gpus", "no gpus");
  ExpectRefused(base + "precision: FP16 instance_group { kind: CPU }",
                "precision", "GPU instances only");
  ExpectRefused(base + "classifier: SSA", "classifier", "cgrseg");
  ExpectRefused(base + "torchscript { optimization: NONE }", "torchscript",
                "platform TORCHSCRIPT only");
  ExpectRefused(
      "platform: TORCHSCRIPT architecture: \"sgcpnet\" num_classes: 3 "
      "input { height: 64 width: 64 }",
      "architecture", "TORCHSCRIPT");
}

TEST(ModelConfigTest, TorchScriptAllowsAnyInputSize) {
  auto config = Parse(R"pb(platform: TORCHSCRIPT
                           num_classes: 4
                           input { height: 100 width: 70 })pb");
  EXPECT_TRUE(config.ok()) << config.status();
  config = Parse(R"pb(platform: TORCHSCRIPT
                      num_classes: 4
                      input { height: 64 width: 64 }
                      torchscript { optimization: FREEZE })pb");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->torchscript().optimization(),
            v1::ModelConfig::TorchScript::FREEZE);
}

TEST(ModelConfigTest, SlideFillsCropAndStrideDefaults) {
  auto config = Parse(R"pb(platform: BUILTIN
                           architecture: "sgcpnet"
                           num_classes: 3
                           input { height: 512 width: 768 resize: SLIDE })pb");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->input().crop_height(), 512u);
  EXPECT_EQ(config->input().crop_width(), 768u);
  EXPECT_EQ(config->input().stride_height(), 341u) << "mmseg's 512 / 341";
  EXPECT_EQ(config->input().stride_width(), 512u);
  const PreprocessOptions options = PreprocessOptionsFromConfig(*config);
  EXPECT_EQ(options.resize, PreprocessOptions::Resize::kSlide);
  EXPECT_EQ(options.crop_width, 768);
  EXPECT_EQ(options.stride_height, 341);

  config = Parse(R"pb(platform: BUILTIN
                      architecture: "sgcpnet"
                      num_classes: 3
                      input {
                        height: 256
                        width: 256
                        resize: SLIDE
                        crop_height: 1024
                        crop_width: 512
                        stride_height: 1000
                        stride_width: 1
                      })pb");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->input().crop_height(), 1024u);
  EXPECT_EQ(config->input().stride_height(), 1000u);
  EXPECT_EQ(config->input().stride_width(), 1u);
}

TEST(ModelConfigTest, RefusesBadSlideFields) {
  const std::string head =
      "platform: BUILTIN architecture: \"sgcpnet\" num_classes: 3 ";
  ExpectRefused(head + "input { height: 64 width: 64 crop_height: 32 }",
                "input.crop_height", "only used with resize: SLIDE");
  ExpectRefused(
      head + "input { height: 64 width: 64 resize: LETTERBOX stride_width: 9 }",
      "input.stride_width", "only used with resize: SLIDE");
  ExpectRefused(
      head + "input { height: 64 width: 64 resize: SLIDE stride_height: 65 }",
      "input.stride_height", "larger than the crop (64)");
  ExpectRefused(
      head + "input { height: 64 width: 64 resize: SLIDE crop_width: 9000 }",
      "input.crop_width", "allowed 0 (the input size)..8192");
}

TEST(ModelConfigTest, MissingFileIsReported) {
  auto config = LoadModelConfig("/nonexistent/model");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("/nonexistent/model/config.pbtxt"));
}

}  // namespace
}  // namespace segserve
