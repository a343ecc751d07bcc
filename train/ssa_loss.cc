#include "train/ssa_loss.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/pooling.h>

#include "model/tensor_resize.h"

namespace segserve {
namespace {

namespace F = torch::nn::functional;

// The official weights and constants.
constexpr double kRelationWeight = 10.0;
constexpr double kPositionWeight = 0.4;
constexpr double kSoftLabelShare = 0.5;  // get_distill_loss's smoothness.
constexpr double kCosineScale = 15.0;
constexpr double kEpsilon = 1e-12;

// N x K x h x w masks, 1 where a pixel has class k; unlabelled pixels are 0
// in every class.
torch::Tensor ClassMasks(const torch::Tensor& labels, int64_t num_classes,
                         torch::ScalarType type) {
  return labels.unsqueeze(1)
      .eq(torch::arange(num_classes, labels.options()).view({1, -1, 1, 1}))
      .to(type);
}

torch::Tensor CrossEntropy(const torch::Tensor& logits,
                           const torch::Tensor& labels, int64_t ignore_label) {
  return F::cross_entropy(
      ResizeBilinear(logits, labels.size(1), labels.size(2)), labels,
      F::CrossEntropyFuncOptions().ignore_index(ignore_label));
}

// Dice loss of sigmoid(logits) against each class present in each image,
// summed and divided by the number of such (image, class) pairs.
torch::Tensor DiceLoss(const torch::Tensor& logits,
                       const torch::Tensor& labels) {
  const int64_t k = logits.size(1);
  const torch::Tensor masks = ClassMasks(labels, k, logits.scalar_type());
  const torch::Tensor labelled = masks.sum(1, /*keepdim=*/true);
  const torch::Tensor probabilities =
      torch::sigmoid(ResizeBilinear(logits, labels.size(1), labels.size(2))) *
      labelled;
  const torch::Tensor areas = masks.sum({2, 3});
  const torch::Tensor overlap = (probabilities * masks).sum({2, 3});
  const torch::Tensor dice =
      1 - (2 * overlap + 1) / (probabilities.sum({2, 3}) + areas + 1);
  const torch::Tensor present = areas.gt(0).to(dice.scalar_type());
  return (dice * present).sum() / present.sum().clamp_min(1);
}

// 1 where a pixel's 3x3 neighbourhood holds another label.
torch::Tensor Boundaries(const torch::Tensor& labels, torch::ScalarType type) {
  const torch::Tensor ids = labels.unsqueeze(1).to(torch::kFloat);
  const auto pool = F::MaxPool2dFuncOptions(3).stride(1).padding(1);
  const torch::Tensor highest = F::max_pool2d(ids, pool);
  const torch::Tensor lowest = -F::max_pool2d(-ids, pool);
  return highest.ne(lowest).squeeze(1).to(type);
}

// get_distill_loss, at the grid of `logits`.
torch::Tensor BoundaryAwareDistillation(const torch::Tensor& logits,
                                        const torch::Tensor& gt_logits,
                                        const torch::Tensor& grid_labels) {
  const int64_t k = logits.size(1);
  const torch::ScalarType type = logits.scalar_type();
  const torch::Tensor soft = torch::softmax(gt_logits.detach(), 1);
  const torch::Tensor masks = ClassMasks(grid_labels, k, type);
  const torch::Tensor target =
      kSoftLabelShare * soft + (1 - kSoftLabelShare) * masks;
  const torch::Tensor per_pixel =
      -(torch::log_softmax(logits, 1) * target).sum(1, /*keepdim=*/true);
  // Unlabelled pixels weigh nothing: their masks are 0 in every class.
  const torch::Tensor entropy =
      -(soft * torch::log(soft + kEpsilon)).sum(1, /*keepdim=*/true);
  const torch::Tensor boundary = Boundaries(grid_labels, type).unsqueeze(1);
  auto class_mean = [&](const torch::Tensor& region) {
    const torch::Tensor weights = masks * entropy * region;
    return (weights * per_pixel).sum({0, 2, 3}) /
           (weights.sum({0, 2, 3}) + kEpsilon);
  };
  const torch::Tensor per_class =
      (class_mean(boundary) + class_mean(1 - boundary)) / 2;
  const torch::Tensor present = masks.sum({0, 2, 3}).gt(0).to(type);
  return (per_class * present).sum() / (present.sum() + kEpsilon);
}

// Softmax over classes of 15 * cosine between class prototypes (N x K x C),
// the other side detached, with the diagonal zeroed.
torch::Tensor ClassRelations(const torch::Tensor& prototypes) {
  const torch::Tensor unit =
      prototypes / (prototypes.norm(2, -1, /*keepdim=*/true) + kEpsilon);
  const torch::Tensor relations = torch::softmax(
      torch::matmul(unit, unit.detach().transpose(1, 2)) * kCosineScale, -1);
  const int64_t k = prototypes.size(1);
  return relations * (1 - torch::eye(k, relations.options()));
}

}  // namespace

SsaLosses ComputeSsaLosses(const SsaTrainingOutputs& outputs,
                           const torch::Tensor& labels, int64_t ignore_label) {
  SsaLosses losses;
  losses.coarse_ce = CrossEntropy(outputs.coarse_logits, labels, ignore_label);
  losses.gt_ce = CrossEntropy(outputs.gt_logits, labels, ignore_label);
  losses.distill = BoundaryAwareDistillation(
      outputs.logits, outputs.gt_logits,
      ResizeLabels(labels, outputs.logits.size(2), outputs.logits.size(3)));
  losses.dice = DiceLoss(outputs.logits, labels);
  losses.gt_dice = DiceLoss(outputs.gt_logits, labels);
  losses.relation = kRelationWeight *
                    torch::relu(ClassRelations(outputs.prototypes) -
                                ClassRelations(outputs.gt_prototypes.detach()))
                        .sum(-1)
                        .mean();
  losses.position =
      kPositionWeight * -(torch::log_softmax(outputs.positions, -1) *
                          torch::softmax(outputs.gt_positions.detach(), -1))
                             .sum(-1)
                             .mean();
  losses.total = losses.coarse_ce + losses.gt_ce + losses.distill +
                 losses.dice + losses.gt_dice + losses.relation +
                 losses.position;
  return losses;
}

}  // namespace segserve
