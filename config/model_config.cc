#include "config/model_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace segserve {
namespace {

constexpr int kMaxInputSide = 8192;
constexpr uint32_t kMaxCropSide = 8192;
constexpr int kMaxInstances = 64;

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(
        absl::StrCat("line ", line + 1, ":", column + 1, ": ", message));
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

bool IsBuiltin(const std::string& architecture) {
  for (const char* known : kBuiltinArchitectures) {
    if (architecture == known) return true;
  }
  return false;
}

// Each check below fills in its part's defaults and refuses what is out of
// range, naming the file and the field.
class FieldChecker {
 public:
  explicit FieldChecker(const std::string& path) : path_(path) {}
  absl::Status Bad(const std::string& field, const std::string& reason) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": field '", field, "': ", reason));
  }

 private:
  const std::string& path_;
};

absl::Status CheckModel(const FieldChecker& check, const std::string& dir_name,
                        v1::ModelConfig& config) {
  if (config.name().empty()) config.set_name(dir_name);
  if (config.name() != dir_name) {
    return check.Bad("name",
                     absl::StrCat("'", config.name(),
                                  "' must equal the model's directory name '",
                                  dir_name, "'"));
  }
  switch (config.platform()) {
    case v1::ModelConfig::BUILTIN:
      if (!IsBuiltin(config.architecture())) {
        return check.Bad(
            "architecture",
            absl::StrCat("'", config.architecture(),
                         "' is not a builtin architecture; allowed: ",
                         absl::StrJoin(kBuiltinArchitectures, ", ")));
      }
      if (config.classifier() == v1::ModelConfig::SSA &&
          config.architecture() == "sgcpnet") {
        return check.Bad("classifier",
                         "SSA applies to cgrseg_* architectures only");
      }
      if (config.has_torchscript()) {
        return check.Bad("torchscript",
                         "applies to platform TORCHSCRIPT only; builtin "
                         "networks are prepared for inference by segserve");
      }
      return absl::OkStatus();
    case v1::ModelConfig::TORCHSCRIPT:
      if (!config.architecture().empty()) {
        return check.Bad("architecture",
                         "only BUILTIN models name an architecture; leave it "
                         "empty for TORCHSCRIPT");
      }
      return absl::OkStatus();
    default:
      return check.Bad("platform", "required: BUILTIN or TORCHSCRIPT");
  }
}

absl::Status CheckClasses(const FieldChecker& check, v1::ModelConfig& config) {
  if (config.num_classes() < 1 || config.num_classes() > kMaxClasses) {
    return check.Bad(
        "num_classes",
        absl::StrCat(config.num_classes(), " is out of range; allowed 1..",
                     kMaxClasses));
  }
  if (config.class_names_size() == 0) {
    for (uint32_t i = 0; i < config.num_classes(); ++i) {
      config.add_class_names(absl::StrCat("class_", i));
    }
  } else if (uint32_t(config.class_names_size()) != config.num_classes()) {
    return check.Bad(
        "class_names",
        absl::StrCat("has ", config.class_names_size(),
                     " entries; give none or exactly num_classes (",
                     config.num_classes(), ")"));
  }
  return absl::OkStatus();
}

// The tiles of SLIDE: defaults filled, sizes checked; the fields are refused
// under the whole-image modes, where they would be silently ignored.
absl::Status CheckSlide(const FieldChecker& check,
                        v1::ModelConfig::Input& input) {
  const bool slide = input.resize() == v1::ModelConfig::Input::SLIDE;
  const std::pair<const char*, uint32_t> fields[] = {
      {"input.crop_height", input.crop_height()},
      {"input.crop_width", input.crop_width()},
      {"input.stride_height", input.stride_height()},
      {"input.stride_width", input.stride_width()}};
  if (!slide) {
    for (const auto& [field, value] : fields) {
      if (value != 0) {
        return check.Bad(field,
                         "is only used with resize: SLIDE; remove it or set "
                         "resize: SLIDE");
      }
    }
    return absl::OkStatus();
  }
  if (input.crop_height() == 0) input.set_crop_height(input.height());
  if (input.crop_width() == 0) input.set_crop_width(input.width());
  for (auto [field, crop] : {std::pair<const char*, uint32_t>{
                                 "input.crop_height", input.crop_height()},
                             {"input.crop_width", input.crop_width()}}) {
    if (crop > kMaxCropSide) {
      return check.Bad(field, absl::StrCat(crop,
                                           " is out of range; allowed 0 "
                                           "(the input size)..",
                                           kMaxCropSide));
    }
  }
  // Two thirds of the crop: each pixel away from the edges is covered by
  // one to four tiles, as with mmsegmentation's usual 512 / 341.
  if (input.stride_height() == 0) {
    input.set_stride_height(std::max(1u, (input.crop_height() * 2 + 1) / 3));
  }
  if (input.stride_width() == 0) {
    input.set_stride_width(std::max(1u, (input.crop_width() * 2 + 1) / 3));
  }
  for (auto [field, stride, crop] :
       {std::tuple<const char*, uint32_t, uint32_t>{
            "input.stride_height", input.stride_height(), input.crop_height()},
        {"input.stride_width", input.stride_width(), input.crop_width()}}) {
    if (stride > crop) {
      return check.Bad(
          field,
          absl::StrCat(stride, " is larger than the crop (", crop,
                       "): tiles would leave gaps; allowed 0 (two thirds of "
                       "the crop)..",
                       crop));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckInput(const FieldChecker& check, v1::ModelConfig& config) {
  auto* input = config.mutable_input();
  for (auto [side, value] :
       {std::pair<const char*, uint32_t>{"input.height", input->height()},
        {"input.width", input->width()}}) {
    if (value == 0 || value > kMaxInputSide) {
      return check.Bad(
          side,
          absl::StrCat(value, " is out of range; allowed 1..", kMaxInputSide));
    }
    if (config.platform() == v1::ModelConfig::BUILTIN && value % 32 != 0) {
      return check.Bad(side,
                       absl::StrCat(value,
                                    " must be a multiple of 32 for builtin "
                                    "architectures (their output stride)"));
    }
  }
  SEGSERVE_RETURN_IF_ERROR(CheckSlide(check, *input));
  if (input->mean_size() == 0) {
    for (float m : kImageNetMean) input->add_mean(m);
  }
  if (input->std_size() == 0) {
    for (float s : kImageNetStd) input->add_std(s);
  }
  if (input->mean_size() != 3) {
    return check.Bad("input.mean", absl::StrCat("has ", input->mean_size(),
                                                " values; give 3 (R, G, B)"));
  }
  if (input->std_size() != 3) {
    return check.Bad("input.std", absl::StrCat("has ", input->std_size(),
                                               " values; give 3 (R, G, B)"));
  }
  for (float s : input->std()) {
    if (!(s > 0)) return check.Bad("input.std", "every value must be positive");
  }
  return absl::OkStatus();
}

absl::Status CheckBatching(const FieldChecker& check, v1::ModelConfig& config) {
  if (config.max_batch_size() == 0) config.set_max_batch_size(1);
  if (config.max_batch_size() > 1024) {
    return check.Bad("max_batch_size",
                     absl::StrCat(config.max_batch_size(),
                                  " is out of range; allowed 0..1024"));
  }
  auto* batching = config.mutable_dynamic_batching();
  for (uint32_t size : batching->preferred_batch_size()) {
    if (size < 1 || size > config.max_batch_size()) {
      return check.Bad(
          "dynamic_batching.preferred_batch_size",
          absl::StrCat(size, " is out of range; allowed 1..max_batch_size (",
                       config.max_batch_size(), ")"));
    }
  }
  if (batching->priority_levels() == 0) batching->set_priority_levels(1);
  if (batching->priority_levels() > 64) {
    return check.Bad("dynamic_batching.priority_levels",
                     absl::StrCat(batching->priority_levels(),
                                  " is out of range; allowed 1..64"));
  }
  if (batching->max_queue_delay_us() > 10'000'000) {
    return check.Bad("dynamic_batching.max_queue_delay_us",
                     "at most 10000000 (10 s) is allowed");
  }
  return absl::OkStatus();
}

absl::Status CheckInstances(const FieldChecker& check,
                            v1::ModelConfig& config) {
  if (config.instance_group_size() == 0) config.add_instance_group();
  for (auto& group : *config.mutable_instance_group()) {
    if (group.count() == 0) group.set_count(1);
    if (group.count() > kMaxInstances) {
      return check.Bad(
          "instance_group.count",
          absl::StrCat(group.count(), " is out of range; allowed 1..",
                       kMaxInstances));
    }
    if (group.kind() == v1::ModelConfig::InstanceGroup::CPU &&
        group.gpus_size() > 0) {
      return check.Bad("instance_group.gpus",
                       "a CPU instance group lists no gpus");
    }
    if (group.kind() == v1::ModelConfig::InstanceGroup::CPU &&
        config.precision() != v1::ModelConfig::FP32) {
      return check.Bad("precision",
                       "FP16 and BF16 run on GPU instances only; CPU runs "
                       "FP32");
    }
    for (int gpu : group.gpus()) {
      if (gpu < 0) return check.Bad("instance_group.gpus", "GPU ids are >= 0");
    }
  }
  if (config.warmup_batches() > 100) {
    return check.Bad("warmup_batches", "at most 100 is allowed");
  }
  return absl::OkStatus();
}

absl::Status CheckVersionPolicy(const FieldChecker& check,
                                v1::ModelConfig& config) {
  auto* policy = config.mutable_version_policy();
  using Policy = v1::ModelConfig::VersionPolicy;
  if (policy->policy_choice_case() == Policy::POLICY_CHOICE_NOT_SET) {
    policy->mutable_latest()->set_num_versions(1);
  }
  if (policy->has_latest() && (policy->latest().num_versions() < 1 ||
                               policy->latest().num_versions() > 1000)) {
    return check.Bad("version_policy.latest.num_versions",
                     absl::StrCat(policy->latest().num_versions(),
                                  " is out of range; allowed 1..1000"));
  }
  if (policy->has_specific()) {
    if (policy->specific().versions().empty()) {
      return check.Bad("version_policy.specific.versions",
                       "list at least one version, or use latest or all");
    }
    for (int64_t version : policy->specific().versions()) {
      if (version < 1) {
        return check.Bad("version_policy.specific.versions",
                         absl::StrCat(version,
                                      " is not a version: versions are "
                                      "positive integers"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                                 const std::string& path,
                                                 const std::string& dir_name) {
  v1::ModelConfig config;
  CollectErrors errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a valid ModelConfig in protobuf text format: ",
        errors.Joined()));
  }
  const FieldChecker check(path);
  SEGSERVE_RETURN_IF_ERROR(CheckModel(check, dir_name, config));
  SEGSERVE_RETURN_IF_ERROR(CheckClasses(check, config));
  SEGSERVE_RETURN_IF_ERROR(CheckInput(check, config));
  SEGSERVE_RETURN_IF_ERROR(CheckBatching(check, config));
  SEGSERVE_RETURN_IF_ERROR(CheckInstances(check, config));
  SEGSERVE_RETURN_IF_ERROR(CheckVersionPolicy(check, config));
  return config;
}

absl::StatusOr<v1::ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  const std::filesystem::path path = dir / "config.pbtxt";
  std::ifstream file(path);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(),
                     ": cannot read the model configuration; "
                     "every model directory needs config.pbtxt"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseModelConfig(text.str(), path.string(), dir.filename().string());
}

PreprocessOptions PreprocessOptionsFromConfig(const v1::ModelConfig& config) {
  PreprocessOptions options;
  options.height = int(config.input().height());
  options.width = int(config.input().width());
  switch (config.input().resize()) {
    case v1::ModelConfig::Input::LETTERBOX:
      options.resize = PreprocessOptions::Resize::kLetterbox;
      break;
    case v1::ModelConfig::Input::SLIDE:
      options.resize = PreprocessOptions::Resize::kSlide;
      break;
    default:
      options.resize = PreprocessOptions::Resize::kStretch;
  }
  // ParseModelConfig filled the SLIDE defaults.
  options.crop_height = int(config.input().crop_height());
  options.crop_width = int(config.input().crop_width());
  options.stride_height = int(config.input().stride_height());
  options.stride_width = int(config.input().stride_width());
  for (int c = 0; c < 3; ++c) {
    options.mean[c] = config.input().mean(c);
    options.std[c] = config.input().std(c);
  }
  return options;
}

}  // namespace segserve
