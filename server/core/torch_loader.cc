#include "server/core/torch_loader.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "config/model_config.h"
#include "model/torch_model.h"
#include "model/torch_runtime.h"
#include "server/core/cpu_lanes.h"
#include "server/core/thread_priority.h"

namespace segserve {

TorchModelOptions TorchModelOptionsFor(
    const v1::ModelConfig& config, const std::string& weights_path,
    const std::string& device, const TorchLoaderOptions& loader_options) {
  TorchModelOptions options;
  options.platform = config.platform() == v1::ModelConfig::TORCHSCRIPT
                         ? TorchModelOptions::Platform::kTorchScript
                         : TorchModelOptions::Platform::kBuiltin;
  options.architecture = config.architecture();
  if (config.classifier() == v1::ModelConfig::SSA) {
    options.classifier = TorchModelOptions::Classifier::kSsa;
  } else if (config.classifier() == v1::ModelConfig::DPG) {
    options.classifier = TorchModelOptions::Classifier::kDpg;
  }
  options.num_classes = int(config.num_classes());
  options.weights_path = weights_path;
  options.input_height = int(config.input().height());
  options.input_width = int(config.input().width());
  const PreprocessOptions preprocess = PreprocessOptionsFromConfig(config);
  options.mean = preprocess.mean;
  options.std = preprocess.std;
  options.device = device;
  switch (config.precision()) {
    case v1::ModelConfig::FP16:
      options.precision = TorchModelOptions::Precision::kFp16;
      break;
    case v1::ModelConfig::BF16:
      options.precision = TorchModelOptions::Precision::kBf16;
      break;
    default:
      options.precision = TorchModelOptions::Precision::kFp32;
  }
  options.max_batch_size = int(config.max_batch_size());
  options.fused_mask_upsampling = loader_options.fused_mask_upsampling;
  using Optimization = TorchModelOptions::TorchScriptOptimization;
  switch (config.torchscript().optimization()) {
    case v1::ModelConfig::TorchScript::NONE:
      options.torchscript_optimization = Optimization::kNone;
      break;
    case v1::ModelConfig::TorchScript::FREEZE:
      options.torchscript_optimization = Optimization::kFreeze;
      break;
    case v1::ModelConfig::TorchScript::FREEZE_CHANNELS_LAST:
      options.torchscript_optimization = Optimization::kFreezeChannelsLast;
      break;
    case v1::ModelConfig::TorchScript::OPTIMIZE_FOR_INFERENCE:
      options.torchscript_optimization = Optimization::kOptimizeForInference;
      break;
    default:
      options.torchscript_optimization = Optimization::kAuto;
  }
  return options;
}

ModelLoader TorchModelLoader(const TorchLoaderOptions& loader_options) {
  ModelLoader load = [loader_options](const v1::ModelConfig& config,
                                      const std::string& weights_path,
                                      const std::string& device)
      -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
    return LoadTorchModel(
        TorchModelOptionsFor(config, weights_path, device, loader_options));
  };
  // CPU models load and run on lanes (server/cpu_lanes.h): as many as the
  // cores hold pools of the intra-op thread count.
  const int lanes = std::max(1, UsableCores() / TorchIntraOpThreads());
  // Threads inherit their creator's nice value: set before the lane's
  // intra-op pool is made, it covers the pool too.
  auto init = [cpu_nice = loader_options.cpu_nice] {
    if (cpu_nice > 0) SetThisThreadNice(cpu_nice);
    UseTorchThreadsInThisThread();
  };
  return RunCpuModelsOnLanes(std::move(load),
                             std::make_shared<CpuLanes>(lanes, init));
}

}  // namespace segserve
