// Building blocks for inference-time rewrites of eval-mode networks:
// BatchNorm as a per-channel affine map (to fold into a neighbouring conv)
// and a depthwise 1-D band convolution along one spatial axis.
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_CONV_FOLDING_H_
#define SEGSERVE_MODEL_CONV_FOLDING_H_

#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include <cstdint>

namespace segserve {

// Eval-mode BatchNorm2d as y = x * scale + shift per channel (both of size
// C): scale = weight / sqrt(running_var + eps), shift = bias -
// running_mean * scale.
struct ChannelAffine {
  torch::Tensor scale;
  torch::Tensor shift;
};
ChannelAffine BatchNormAffine(const torch::nn::BatchNorm2d& bn);

// A depthwise convolution with a 1-D kernel along `dim` (2: a k x 1 kernel
// along H, 3: 1 x k along W), stride 1, zero padding k / 2 on both sides
// (k odd), as conv2d with groups = C computes it. x: N x C x H x W; weight:
// C x k; bias: C or undefined. Computed as k shifted multiply-adds (on the
// CPU for float in one parallel loop over the planes), many times faster
// than LibTorch's depthwise conv2d with such kernels. The result has x's
// memory format.
torch::Tensor DepthwiseBandConv(const torch::Tensor& x,
                                const torch::Tensor& weight,
                                const torch::Tensor& bias, int64_t dim);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_CONV_FOLDING_H_
