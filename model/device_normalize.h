#ifndef SEGSERVE_MODEL_DEVICE_NORMALIZE_H_
#define SEGSERVE_MODEL_DEVICE_NORMALIZE_H_

// The half of a batch's normalization that runs on the model's device (a GPU
// in serving; any device in tests). Includes torch: keep it out of widely
// included headers.

#include <torch/types.h>

#include <array>

#include "absl/types/span.h"
#include "model/model_input.h"

namespace segserve {

// Per-channel factors of (pixel - mean) / std as 1 x 3 x 1 x 1 tensors on
// `device`: scale = 1 / std, shift = -mean / std, in float.
struct NormalizeFactors {
  torch::Tensor scale;
  torch::Tensor shift;
};
NormalizeFactors MakeNormalizeFactors(const std::array<float, 3>& mean,
                                      const std::array<float, 3>& std,
                                      torch::Device device);

// N x H x W x 3 bytes (where the factors are) to N x 3 x H x W floats:
// pixel * scale + shift, as model/preprocess.h's Normalize computes it (a
// product, then a sum), and zero outside each input's region. `inputs`
// gives the regions, in the batch's order.
torch::Tensor NormalizeBytes(const torch::Tensor& bytes,
                             absl::Span<const ModelInput> inputs,
                             const NormalizeFactors& factors);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_DEVICE_NORMALIZE_H_
