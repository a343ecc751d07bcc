// Resizing of logits, features and label maps between grids, shared by the
// networks and the trainer's losses. Only model/*.cc, train/*.cc and tests
// include this header (LibTorch).

#ifndef SEGSERVE_MODEL_TENSOR_RESIZE_H_
#define SEGSERVE_MODEL_TENSOR_RESIZE_H_

#include <torch/types.h>

#include <cstdint>

namespace segserve {

// Bilinear resize of N x C x h x w (align_corners=false, as mmseg) to
// `height` x `width`; returns `x` itself when the size already agrees.
torch::Tensor ResizeBilinear(const torch::Tensor& x, int64_t height,
                             int64_t width);

// Nearest-neighbour resize of N x H x W int64 labels (PyTorch's 'nearest':
// source index floor(i * in / out)), as the official heads bring the ground
// truth to their grid.
torch::Tensor ResizeLabels(const torch::Tensor& labels, int64_t height,
                           int64_t width);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TENSOR_RESIZE_H_
