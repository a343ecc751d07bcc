#ifndef SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_
#define SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_

#include "inference/open_inference.pb.h"
#include "segserve/v1/model_config.pb.h"

namespace segserve {

// A model's config.pbtxt as the Open Inference Protocol's ModelConfig
// extension describes models (Triton's model configuration): the IMAGE input
// and the MASK, CONFIDENCE and CLASS_PIXELS outputs with their datatypes and
// dims (without the batch dimension), the batching and the instances.
inference::ModelConfig ToOipModelConfig(const v1::ModelConfig& config);

// The platform name tooling knows a model by: "pytorch_libtorch" for
// TorchScript (as Triton), "segserve_builtin" for a builtin architecture.
const char* OipPlatform(const v1::ModelConfig& config);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_
