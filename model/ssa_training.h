// What training the SSA classifier needs beside its served logits: the
// tensors of the official CGRSeg_ssa forward_train (github.com/xwmaxwma/SSA,
// models/decode_heads/cgr_head_ssa.py) that its losses compare. The
// "ground-truth branch" builds the class centers from the labelled pixels
// instead of the coarse prediction; it teaches the adapted branch during
// training (the paper's online multi-domain distillation) and never serves.
//
// Only model/*.cc, train/*.cc and tests include this header (LibTorch).

#ifndef SEGSERVE_MODEL_SSA_TRAINING_H_
#define SEGSERVE_MODEL_SSA_TRAINING_H_

#include <torch/types.h>

namespace segserve {

// N images, K classes, C channels, at the head's h x w (1/8 of the input).
struct SsaTrainingOutputs {
  torch::Tensor logits;         // N x K x h x w, adapted: what serves.
  torch::Tensor coarse_logits;  // N x K x h x w, the classifier before SSA.
  torch::Tensor gt_logits;      // N x K x h x w, the ground-truth branch's.
  // N x K x C semantic prototypes after center_content_proj, and the
  // ground-truth branch's after gt_center_content_proj.
  torch::Tensor prototypes;
  torch::Tensor gt_prototypes;
  // N x K x C spatial prototypes after center_pos_proj, and the
  // ground-truth branch's after gt_center_pos_proj.
  torch::Tensor positions;
  torch::Tensor gt_positions;
  // N x C' x h x w, the head's reconstruction before linear_fuse: the
  // decoder features relation distillation compares (as
  // BuiltinNetwork::forward_with_features gives them).
  torch::Tensor features;
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SSA_TRAINING_H_
