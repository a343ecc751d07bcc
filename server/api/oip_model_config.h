#ifndef SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_
#define SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_

#include "inference/open_inference.pb.h"
#include "segserve/v1/model_config.pb.h"
#include "server/core/model_repository.h"

namespace segserve {

// A model's config.pbtxt as the Open Inference Protocol's ModelConfig
// extension describes models (Triton's model configuration): the IMAGE input
// and the MASK, CONFIDENCE and CLASS_PIXELS outputs with their datatypes and
// dims (without the batch dimension), the batching and the instances.
inference::ModelConfig ToOipModelConfig(const v1::ModelConfig& config);

// A model's metadata as the Open Inference Protocol describes it (gRPC
// ModelMetadata, REST GET /v2/models/{name}): its ready versions, platform,
// the IMAGE input and the outputs, and properties for what the tensors
// cannot say (the pixel input form, architecture, classes, input size).
void ToOipModelMetadata(const ModelStatus& status,
                        inference::ModelMetadataResponse* response);

// The platform name tooling knows a model by: "pytorch_libtorch" for
// TorchScript (as Triton), "segserve_builtin" for a builtin architecture.
const char* OipPlatform(const v1::ModelConfig& config);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_OIP_MODEL_CONFIG_H_
