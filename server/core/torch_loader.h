#ifndef SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
#define SEGSERVE_SERVER_CORE_TORCH_LOADER_H_

#include <string>

#include "model/torch_model.h"
#include "segserve/v1/model_config.pb.h"
#include "server/core/served_model.h"

namespace segserve {

struct TorchLoaderOptions {
  // CPU models run on threads (and their intra-op pools) at this nice value
  // (0..19, Linux's): a lower priority than the threads that receive, refuse
  // and decode requests, so that on busy cores those are not kept waiting
  // behind a batch.
  int cpu_nice = 0;
  // TorchModelOptions::fused_mask_upsampling.
  bool fused_mask_upsampling = true;
};

// How the loader below loads `config`'s weights at `weights_path` on
// `device` (for tools that load a model as the server does, on their own
// thread).
TorchModelOptions TorchModelOptionsFor(
    const v1::ModelConfig& config, const std::string& weights_path,
    const std::string& device, const TorchLoaderOptions& loader_options);

// The production ModelLoader: builtin architectures and TorchScript modules
// through LibTorch (model/torch_model.h).
ModelLoader TorchModelLoader(const TorchLoaderOptions& loader_options = {});

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
