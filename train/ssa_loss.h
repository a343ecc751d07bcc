// The SSA classifier's training losses: the paper's online multi-domain
// distillation, in which the ground-truth branch (class centers from the
// labelled pixels) teaches the adapted branch (centers from the coarse
// prediction), as the official CGRSeg_ssa forward_train combines them
// (github.com/xwmaxwma/SSA, models/decode_heads/cgr_head_ssa.py). The
// trainer adds these to its cross-entropy on the adapted (served) logits:
//   coarse_ce   cross-entropy of the coarse logits (before SSA)     x1
//   gt_ce       cross-entropy of the ground-truth branch's logits   x1
//   distill     the adapted logits against 0.5 * softmax(gt branch) +
//               0.5 * one-hot labels, weighted per pixel by the gt
//               branch's entropy, averaged per class over its boundary
//               and interior pixels apart, then over the classes
//               (get_distill_loss; at the head's 1/8 grid)         x1
//   dice        Dice loss of each labelled class's sigmoid mask, per
//               image, adapted branch                               x1
//   gt_dice     the same for the ground-truth branch                x1
//   relation    class-to-class relations of the adapted semantic
//               prototypes (softmax over classes of 15 * cosine, the
//               diagonal left out) may not exceed the gt branch's:
//               the excess, summed per class, averaged             x10
//   position    cross-entropy of the spatial prototypes' softmax over
//               channels against the gt branch's                   x0.4
// Departures, all small: boundary pixels are those whose 3x3
// neighbourhood holds another label (the official code runs Canny on the
// label map, dilates by 3x3 and drops a 6-pixel frame, which on a 32x32
// grid would drop 61% of it); the Dice loss leaves out unlabelled pixels
// (the official one counts them as background of every class); logits are
// upsampled to the labels with align_corners=false, as everywhere in
// segtrain (the official head uses true for these losses); the head has no
// dropout before its classifier (the official config: 0.1).
//
// Only train/*.cc and tests include this header (LibTorch).
#ifndef SEGSERVE_TRAIN_SSA_LOSS_H_
#define SEGSERVE_TRAIN_SSA_LOSS_H_

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "model/ssa_training.h"

namespace segserve {

struct SsaLosses {
  // Each as it adds to the total (weights applied).
  torch::Tensor coarse_ce, gt_ce, distill, dice, gt_dice, relation, position;
  torch::Tensor total;  // The weighted sum.

  // The terms by the names the progress line and the gradient report use
  // (coarse, gt, distill, dice, gt_dice, relation, position), in that
  // order; undefined tensors when not computed.
  std::vector<std::pair<std::string, torch::Tensor>> Named() const {
    return {{"coarse", coarse_ce}, {"gt", gt_ce},        {"distill", distill},
            {"dice", dice},        {"gt_dice", gt_dice}, {"relation", relation},
            {"position", position}};
  }
};

// `labels`: N x H x W int64 at the input size; `ignore_label` marks pixels
// without a label. Every tensor of `outputs` must be filled.
SsaLosses ComputeSsaLosses(const SsaTrainingOutputs& outputs,
                           const torch::Tensor& labels, int64_t ignore_label);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_SSA_LOSS_H_
