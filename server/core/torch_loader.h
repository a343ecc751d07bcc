#ifndef SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
#define SEGSERVE_SERVER_CORE_TORCH_LOADER_H_

#include "server/core/served_model.h"

namespace segserve {

// The production ModelLoader: builtin architectures and TorchScript modules
// through LibTorch (model/torch_model.h).
ModelLoader TorchModelLoader();

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_TORCH_LOADER_H_
