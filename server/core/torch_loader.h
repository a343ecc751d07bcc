#ifndef SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
#define SEGSERVE_SERVER_CORE_TORCH_LOADER_H_

#include "server/core/served_model.h"

namespace segserve {

// The production ModelLoader: builtin architectures and TorchScript modules
// through LibTorch (model/torch_model.h). CPU models run on threads (and
// their intra-op pools) at `cpu_nice` (0..19, Linux's nice): a lower
// priority than the threads that receive, refuse and decode requests, so
// that on busy cores those are not kept waiting behind a batch.
ModelLoader TorchModelLoader(int cpu_nice = 0);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
