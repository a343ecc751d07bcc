#include "model/tensor_resize.h"

#include <torch/nn/functional/upsampling.h>

#include <vector>

namespace segserve {

namespace F = torch::nn::functional;

torch::Tensor ResizeBilinear(const torch::Tensor& x, int64_t height,
                             int64_t width) {
  if (x.size(2) == height && x.size(3) == width) return x;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{height, width})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

torch::Tensor ResizeLabels(const torch::Tensor& labels, int64_t height,
                           int64_t width) {
  if (labels.size(1) == height && labels.size(2) == width) return labels;
  return F::interpolate(labels.unsqueeze(1).to(torch::kFloat),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{height, width})
                            .mode(torch::kNearest))
      .squeeze(1)
      .to(torch::kLong);
}

}  // namespace segserve
