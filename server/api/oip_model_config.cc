#include "server/api/oip_model_config.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/api/infer_request.h"

namespace segserve {

const char* OipPlatform(const v1::ModelConfig& config) {
  return config.platform() == v1::ModelConfig::TORCHSCRIPT ? "pytorch_libtorch"
                                                           : "segserve_builtin";
}

inference::ModelConfig ToOipModelConfig(const v1::ModelConfig& config) {
  inference::ModelConfig out;
  out.set_name(config.name());
  out.set_platform(OipPlatform(config));
  out.set_backend("segserve");
  // Every version in the repository is served (newest by default).
  out.mutable_version_policy()->mutable_all();
  out.set_max_batch_size(int32_t(config.max_batch_size()));

  inference::ModelInput* image = out.add_input();
  image->set_name(kImageTensor);
  image->set_data_type(inference::TYPE_STRING);  // Encoded; UINT8 also taken.
  image->add_dims(1);
  const int64_t classes = int64_t(config.num_classes());
  auto add_output = [&](const char* name, inference::DataType type,
                        std::initializer_list<int64_t> dims) {
    inference::ModelOutput* output = out.add_output();
    output->set_name(name);
    output->set_data_type(type);
    for (int64_t dim : dims) output->add_dims(dim);
  };
  add_output(kMaskTensor,
             classes > 256 ? inference::TYPE_UINT16 : inference::TYPE_UINT8,
             {-1, -1});
  add_output(kConfidenceTensor, inference::TYPE_UINT8, {-1, -1});
  add_output(kClassPixelsTensor, inference::TYPE_INT64, {classes});

  const v1::ModelConfig::DynamicBatching& batching = config.dynamic_batching();
  inference::ModelDynamicBatching* dynamic = out.mutable_dynamic_batching();
  for (uint32_t size : batching.preferred_batch_size()) {
    dynamic->add_preferred_batch_size(int32_t(size));
  }
  dynamic->set_max_queue_delay_microseconds(batching.max_queue_delay_us());
  dynamic->set_priority_levels(batching.priority_levels());
  dynamic->mutable_default_queue_policy()->set_default_timeout_microseconds(
      batching.default_timeout_us());
  dynamic->mutable_default_queue_policy()->set_max_queue_size(
      batching.max_queue_size());

  for (const v1::ModelConfig::InstanceGroup& group : config.instance_group()) {
    inference::ModelInstanceGroup* instances = out.add_instance_group();
    instances->set_count(int32_t(group.count()));
    instances->set_kind(group.kind() == v1::ModelConfig::InstanceGroup::GPU
                            ? inference::ModelInstanceGroup::KIND_GPU
                        : group.kind() == v1::ModelConfig::InstanceGroup::CPU
                            ? inference::ModelInstanceGroup::KIND_CPU
                            : inference::ModelInstanceGroup::KIND_AUTO);
    for (int32_t gpu : group.gpus()) instances->add_gpus(gpu);
  }
  return out;
}

namespace {

void AddTensor(const std::string& name, const std::string& datatype,
               std::vector<int64_t> shape,
               google::protobuf::RepeatedPtrField<
                   inference::ModelMetadataResponse::TensorMetadata>* tensors) {
  auto* tensor = tensors->Add();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  for (int64_t dim : shape) tensor->add_shape(dim);
}

}  // namespace

void ToOipModelMetadata(const ModelStatus& status,
                        inference::ModelMetadataResponse* response) {
  response->set_name(status.name);
  for (const VersionStatus& version : status.versions) {
    if (version.state == ModelState::kReady) {
      response->add_versions(absl::StrCat(version.version));
    }
  }
  if (!status.has_config) return;
  const v1::ModelConfig& config = status.config;
  response->set_platform(OipPlatform(config));
  const int64_t classes = int64_t(config.num_classes());
  AddTensor(kImageTensor, "BYTES", {-1}, response->mutable_inputs());
  AddTensor(kMaskTensor, classes > 256 ? "UINT16" : "UINT8", {-1, -1, -1},
            response->mutable_outputs());
  AddTensor(kConfidenceTensor, "UINT8", {-1, -1, -1},
            response->mutable_outputs());
  AddTensor(kClassPixelsTensor, "INT64", {-1, classes},
            response->mutable_outputs());
  auto& properties = *response->mutable_properties();
  properties["IMAGE.alternative"] = "UINT8 [-1, -1, -1, 3] (RGB pixels)";
  properties["architecture"] = config.architecture();
  properties["class_names"] = absl::StrJoin(config.class_names(), ",");
  properties["max_batch_size"] = absl::StrCat(config.max_batch_size());
  properties["input_size"] =
      absl::StrCat(config.input().width(), "x", config.input().height());
  properties["input_resize"] =
      v1::ModelConfig::Input::Resize_Name(config.input().resize());
}

}  // namespace segserve
