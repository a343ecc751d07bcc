// The SSA classifier (Ma et al., "Semantic and Spatial Adaptive Pixel-level
// Classifier for Semantic Segmentation"), inference path, as used by the
// official CGRSeg_ssa head (github.com/xwmaxwma/SSA,
// models/decode_heads/cgr_head_ssa.py, forward_test).
//
// Given the head's coarse logits L (N x K x h x w, K classes), the features
// F they were classified from (N x C x h x w, the linear_fuse output) and
// the classifier's fixed prototypes P (conv_seg's weight, K x C):
//   feat_pos  = get_feat_pos(F)                (depthwise 3x3 conv, bias)
//   spatial   = softmax over h*w of L, applied to feat_pos   (N x K x C)
//   center_pos = center_pos_proj([center_pos.weight, spatial])
//   semantic  = softmax over K of L, applied to F and divided by the
//               per-class mass (+1e-12)                        (N x K x C)
//   proto     = center_content_proj([semantic, P])
//   center    = center_proj(proto + center_pos)
//   logits    = 15 * cos(center_k, F + feat_pos) per pixel (norms + 1e-12)
// The two-layer MLPs are Linear(2C, C/2, no bias), ReLU, Linear(C/2, C).
//
// The official head also holds training-only modules: gt_center_content_proj,
// gt_center_pos_proj, gt_center_proj (the ground-truth branch, run by
// TrainingForward) and ssa_loss.criterion.empty_weight (registered so that
// official checkpoints load strictly; the losses are in train/ssa_loss.h).
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_SSA_HEAD_H_
#define SEGSERVE_MODEL_SSA_HEAD_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

#include "model/ssa_training.h"

namespace segserve {
namespace ssa {

// The DETR-style SetCriterion of SSA's loss: only its `empty_weight` buffer
// (ones, the last of K + 1 being eos_coef 0.1) is part of a checkpoint.
class SetCriterionImpl : public torch::nn::Module {
 public:
  explicit SetCriterionImpl(int64_t num_classes);
};
TORCH_MODULE(SetCriterion);

// "SSALoss": holds `criterion`. Training only.
class SsaLossImpl : public torch::nn::Module {
 public:
  explicit SsaLossImpl(int64_t num_classes);
};
TORCH_MODULE(SsaLoss);

// Linear(2C, C/2, no bias), ReLU, Linear(C/2, C): the prototype MLPs, kept
// as the official Sequential for the key names (.0, .2).
class PrototypeMlp {
 public:
  explicit PrototypeMlp(int64_t channels);
  torch::Tensor Forward(const torch::Tensor& x) const;
  const torch::nn::Sequential& sequential() const { return sequential_; }

 private:
  torch::nn::Linear in_{nullptr};
  torch::nn::Linear out_{nullptr};
  torch::nn::Sequential sequential_{nullptr};
};

// x W^T (+ b) through aten::linear. LibTorch's nn::Linear::forward computes
// the same with matmul/addmm, which the MAC counter (model/mac_counter.h)
// cannot tell from attention products; this one it counts.
torch::Tensor Linear(const torch::nn::Linear& layer, const torch::Tensor& x);

// 15 * cosine similarity of every class center (N x K x C) with every pixel
// of `features` (N x C x h x w), each L2-normalized with 1e-12 added to the
// norm as in the official get_pred. Returns N x K x h x w.
torch::Tensor CosineLogits(const torch::Tensor& features,
                           const torch::Tensor& centers);

}  // namespace ssa

// Registers the SSA modules directly on `owner` (the head: the official keys
// are decode_head.get_feat_pos..., not nested) and runs the inference path.
// The owner must outlive this object. Forward leaves the
// modules unchanged, so concurrent calls are safe in eval mode.
class SsaClassifier {
 public:
  SsaClassifier(torch::nn::Module& owner, int64_t channels,
                int64_t num_classes);

  // logits: N x K x h x w coarse logits; features: N x C x h x w;
  // prototypes: the classifier's K x C weights. Returns N x K x h x w.
  torch::Tensor Forward(const torch::Tensor& logits,
                        const torch::Tensor& features,
                        const torch::Tensor& prototypes);

  // Forward and the ground-truth branch, for training. `labels`: N x h x w
  // int64 class ids at the features' size; any id outside 0..K-1 (the
  // ignore label) belongs to no class. The branch's semantic centers are
  // the mean feature of each class over the whole batch, its spatial ones
  // the mean position feature per image; a class without pixels keeps the
  // classifier's weight (detached) or center_pos, as the official
  // get_gt_center.
  SsaTrainingOutputs TrainingForward(const torch::Tensor& logits,
                                     const torch::Tensor& features,
                                     const torch::Tensor& prototypes,
                                     const torch::Tensor& labels);

 private:
  // The adapted branch: fills logits, prototypes and positions.
  void Adapt(const torch::Tensor& logits, const torch::Tensor& features,
             const torch::Tensor& feat_pos, const torch::Tensor& prototypes,
             SsaTrainingOutputs& out);

  torch::nn::Conv2d get_feat_pos_{nullptr};
  torch::nn::Embedding center_pos_{nullptr};
  ssa::PrototypeMlp center_content_proj_;
  ssa::PrototypeMlp gt_center_content_proj_;
  ssa::PrototypeMlp center_pos_proj_;
  ssa::PrototypeMlp gt_center_pos_proj_;
  torch::nn::Linear center_proj_{nullptr};
  torch::nn::Linear gt_center_proj_{nullptr};
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SSA_HEAD_H_
