#include "model/ssa_head.h"

#include <torch/nn/modules/activation.h>

namespace segserve {
namespace ssa {
namespace {

// SetCriterion's weight of the "no object" class.
constexpr double kEosCoefficient = 0.1;
// The official get_pred's temperature and norm guard.
constexpr double kCosineScale = 15.0;
constexpr double kNormEpsilon = 1e-12;
// pred_ssa's guard on a class's total mass.
constexpr double kMassEpsilon = 1e-12;

torch::nn::Linear MakeLinear(int64_t in_features, int64_t out_features,
                             bool bias) {
  return torch::nn::Linear(
      torch::nn::LinearOptions(in_features, out_features).bias(bias));
}

// x / (||x||_2 along `dim` + eps), the official normalization (not
// F.normalize, which clamps the norm instead of adding to it).
torch::Tensor Normalize(const torch::Tensor& x, int64_t dim) {
  return x / (x.norm(2, dim, /*keepdim=*/true) + kNormEpsilon);
}

}  // namespace

SetCriterionImpl::SetCriterionImpl(int64_t num_classes) {
  torch::Tensor empty_weight = torch::ones({num_classes + 1});
  empty_weight[num_classes] = kEosCoefficient;
  register_buffer("empty_weight", empty_weight);
}

SsaLossImpl::SsaLossImpl(int64_t num_classes) {
  register_module("criterion", SetCriterion(num_classes));
}

PrototypeMlp::PrototypeMlp(int64_t channels)
    : in_(MakeLinear(channels * 2, channels / 2, /*bias=*/false)),
      out_(MakeLinear(channels / 2, channels, /*bias=*/true)),
      sequential_(in_, torch::nn::ReLU(), out_) {}

torch::Tensor PrototypeMlp::Forward(const torch::Tensor& x) const {
  return Linear(out_, torch::relu(Linear(in_, x)));
}

torch::Tensor Linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return torch::linear(x, layer->weight, layer->bias);
}

torch::Tensor CosineLogits(const torch::Tensor& features,
                           const torch::Tensor& centers) {
  const int64_t n = features.size(0);
  const int64_t c = features.size(1);
  const torch::Tensor pixels = Normalize(features, 1).reshape({n, c, -1});
  const torch::Tensor scores =
      torch::matmul(Normalize(centers, 2), pixels).mul_(kCosineScale);
  return scores.view({n, centers.size(1), features.size(2), features.size(3)});
}

}  // namespace ssa

SsaClassifier::SsaClassifier(torch::nn::Module& owner, int64_t channels,
                             int64_t num_classes)
    : center_content_proj_(channels),
      gt_center_content_proj_(channels),
      center_pos_proj_(channels),
      gt_center_pos_proj_(channels) {
  // Registration order is the official one; it fixes the key order.
  get_feat_pos_ = owner.register_module(
      "get_feat_pos",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3)
                            .padding(1)
                            .groups(channels)));
  center_pos_ = owner.register_module(
      "center_pos", torch::nn::Embedding(num_classes, channels));
  owner.register_module("center_content_proj",
                        center_content_proj_.sequential());
  owner.register_module("gt_center_content_proj",
                        gt_center_content_proj_.sequential());
  owner.register_module("center_pos_proj", center_pos_proj_.sequential());
  owner.register_module("gt_center_pos_proj", gt_center_pos_proj_.sequential());
  center_proj_ = owner.register_module(
      "center_proj", ssa::MakeLinear(channels, channels, /*bias=*/false));
  gt_center_proj_ = owner.register_module(
      "gt_center_proj", ssa::MakeLinear(channels, channels, /*bias=*/false));
  owner.register_module("ssa_loss", ssa::SsaLoss(num_classes));
}

torch::Tensor SsaClassifier::Forward(const torch::Tensor& logits,
                                     const torch::Tensor& features,
                                     const torch::Tensor& prototypes) {
  SsaTrainingOutputs out;
  Adapt(logits, features, get_feat_pos_->forward(features), prototypes, out);
  return out.logits;
}

void SsaClassifier::Adapt(const torch::Tensor& logits,
                          const torch::Tensor& features,
                          const torch::Tensor& feat_pos,
                          const torch::Tensor& prototypes,
                          SsaTrainingOutputs& out) {
  const int64_t n = features.size(0);
  const int64_t c = features.size(1);
  const int64_t k = logits.size(1);
  const torch::Tensor flat_logits = logits.reshape({n, k, -1});
  // N x HW x C views; matmul reads them strided, no transposed copies.
  const torch::Tensor pos_pixels = feat_pos.reshape({n, c, -1}).transpose(1, 2);
  const torch::Tensor pixels = features.reshape({n, c, -1}).transpose(1, 2);

  // Spatial prototypes: where each class is, in position-feature space.
  const torch::Tensor where = torch::softmax(flat_logits, 2);
  out.positions = center_pos_proj_.Forward(
      torch::cat({center_pos_->weight.unsqueeze(0).expand({n, k, c}),
                  torch::matmul(where, pos_pixels)},
                 2));

  // Semantic prototypes: the mean feature of each class's soft mask.
  const torch::Tensor what = torch::softmax(flat_logits, 1);
  const torch::Tensor semantic =
      torch::matmul(what, pixels) /
      (what.sum(2, /*keepdim=*/true) + ssa::kMassEpsilon);
  out.prototypes = center_content_proj_.Forward(torch::cat(
      {semantic, prototypes.reshape({k, c}).unsqueeze(0).expand({n, k, c})},
      2));

  const torch::Tensor centers =
      ssa::Linear(center_proj_, out.prototypes + out.positions);
  out.logits = ssa::CosineLogits(features + feat_pos, centers);
}

SsaTrainingOutputs SsaClassifier::TrainingForward(
    const torch::Tensor& logits, const torch::Tensor& features,
    const torch::Tensor& prototypes, const torch::Tensor& labels) {
  const int64_t n = features.size(0);
  const int64_t c = features.size(1);
  const int64_t k = logits.size(1);
  TORCH_CHECK(labels.dim() == 3 && labels.size(0) == n &&
                  labels.size(1) == features.size(2) &&
                  labels.size(2) == features.size(3),
              "SSA training: labels must be N x h x w at the features' size");
  SsaTrainingOutputs out;
  out.coarse_logits = logits;
  const torch::Tensor feat_pos = get_feat_pos_->forward(features);
  Adapt(logits, features, feat_pos, prototypes, out);

  // One-hot class masks, N x K x HW; unlabelled pixels are in none.
  const torch::Tensor flat_labels = labels.reshape({n, 1, -1});
  const torch::Tensor masks =
      flat_labels.eq(torch::arange(k, labels.options()).view({1, k, 1}))
          .to(features.scalar_type());
  const torch::Tensor pixels = features.reshape({n, c, -1}).transpose(1, 2);
  const torch::Tensor pos_pixels = feat_pos.reshape({n, c, -1}).transpose(1, 2);
  const torch::Tensor weights = prototypes.reshape({k, c});

  // Semantic centers: each class's mean feature over the batch.
  const torch::Tensor counts =
      masks.sum(std::vector<int64_t>{0, 2}).unsqueeze(1);  // K x 1.
  const torch::Tensor semantic = torch::where(
      counts > 0,
      torch::matmul(masks, pixels).sum(0) / (counts + ssa::kMassEpsilon),
      weights.detach());
  out.gt_prototypes =
      gt_center_content_proj_.Forward(torch::cat({semantic, weights}, 1))
          .unsqueeze(0)
          .expand({n, k, c});

  // Spatial centers: each class's mean position feature in its image.
  const torch::Tensor table =
      center_pos_->weight.unsqueeze(0).expand({n, k, c});
  const torch::Tensor pos_counts =
      masks.sum(2, /*keepdim=*/true);  // N x K x 1.
  const torch::Tensor spatial = torch::where(
      pos_counts > 0,
      torch::matmul(masks, pos_pixels) / (pos_counts + ssa::kMassEpsilon),
      table.detach());
  out.gt_positions =
      gt_center_pos_proj_.Forward(torch::cat({spatial, table}, 2));

  const torch::Tensor centers =
      ssa::Linear(gt_center_proj_, out.gt_prototypes + out.gt_positions);
  out.gt_logits = ssa::CosineLogits(features + feat_pos, centers);
  return out;
}

}  // namespace segserve
