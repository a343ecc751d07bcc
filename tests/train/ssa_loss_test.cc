#include "train/ssa_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace segserve {
namespace {

constexpr int64_t kIgnore = 255;

// Outputs of N images with K classes on an h x w grid, C channels: random,
// every tensor filled.
SsaTrainingOutputs RandomOutputs(int64_t n, int64_t k, int64_t h, int64_t w,
                                 int64_t c = 8) {
  SsaTrainingOutputs out;
  out.logits = torch::randn({n, k, h, w});
  out.coarse_logits = torch::randn({n, k, h, w});
  out.gt_logits = torch::randn({n, k, h, w});
  out.prototypes = torch::randn({n, k, c});
  out.gt_prototypes = torch::randn({n, k, c});
  out.positions = torch::randn({n, k, c});
  out.gt_positions = torch::randn({n, k, c});
  return out;
}

// Logits that say `labels` with margin `scale` (unlabelled pixels: class 0).
torch::Tensor LogitsFor(const torch::Tensor& labels, int64_t k, double scale) {
  const torch::Tensor ids = labels.clamp_max(k - 1);
  return (torch::one_hot(ids, k).permute({0, 3, 1, 2}).to(torch::kFloat) * 2 -
          1) *
         scale;
}

TEST(SsaLossTest, TotalIsTheSumOfItsTermsAndEveryTermIsFinite) {
  torch::manual_seed(1);
  const SsaTrainingOutputs out = RandomOutputs(2, 4, 8, 8);
  const torch::Tensor labels = torch::randint(0, 4, {2, 64, 64}, torch::kLong);
  const SsaLosses l = ComputeSsaLosses(out, labels, kIgnore);
  const torch::Tensor terms[] = {l.coarse_ce, l.gt_ce,    l.distill, l.dice,
                                 l.gt_dice,   l.relation, l.position};
  double sum = 0;
  for (const torch::Tensor& t : terms) {
    ASSERT_TRUE(t.defined());
    ASSERT_EQ(t.dim(), 0);
    EXPECT_TRUE(std::isfinite(t.item<double>()));
    sum += t.item<double>();
  }
  EXPECT_NEAR(l.total.item<double>(), sum, 1e-4);
}

// Dice: near 0 for confident right masks, near 1 for confident wrong ones;
// pixels without a label count for nothing.
TEST(SsaLossTest, DiceRewardsRightMasksAndIgnoresUnlabelledPixels) {
  const torch::Tensor labels = torch::randint(0, 3, {2, 16, 16}, torch::kLong);
  SsaTrainingOutputs out = RandomOutputs(2, 3, 16, 16);
  out.logits = LogitsFor(labels, 3, 20);
  EXPECT_LT(ComputeSsaLosses(out, labels, kIgnore).dice.item<double>(), 1e-3);
  out.logits = -out.logits;
  EXPECT_GT(ComputeSsaLosses(out, labels, kIgnore).dice.item<double>(), 0.99);

  // Unlabelling a block and changing the logits there changes nothing.
  torch::Tensor partly = labels.clone();
  partly.slice(1, 0, 8).fill_(kIgnore);
  out.logits = LogitsFor(labels, 3, 20);
  const double before =
      ComputeSsaLosses(out, partly, kIgnore).dice.item<double>();
  out.logits.slice(2, 0, 8).mul_(-1);
  EXPECT_DOUBLE_EQ(ComputeSsaLosses(out, partly, kIgnore).dice.item<double>(),
                   before);
}

// Distillation to 0.5 * softmax(gt) + 0.5 * one-hot: lowest when the
// adapted logits say the labels; pixels without a label weigh nothing.
TEST(SsaLossTest, DistillationFollowsLabelsAndTheGroundTruthBranch) {
  torch::manual_seed(2);
  const torch::Tensor labels = torch::randint(0, 3, {1, 8, 8}, torch::kLong);
  SsaTrainingOutputs out = RandomOutputs(1, 3, 8, 8);
  out.gt_logits = LogitsFor(labels, 3, 1);
  out.logits = LogitsFor(labels, 3, 3);
  const double right =
      ComputeSsaLosses(out, labels, kIgnore).distill.item<double>();
  out.logits = -out.logits;
  const double wrong =
      ComputeSsaLosses(out, labels, kIgnore).distill.item<double>();
  EXPECT_LT(right, wrong);

  torch::Tensor partly = labels.clone();
  partly.slice(1, 0, 4).fill_(kIgnore);
  const double before =
      ComputeSsaLosses(out, partly, kIgnore).distill.item<double>();
  out.logits.slice(2, 0, 4).normal_();
  EXPECT_DOUBLE_EQ(
      ComputeSsaLosses(out, partly, kIgnore).distill.item<double>(), before);
}

// Pixels where the ground-truth branch is certain (entropy 0) weigh
// nothing; each class's uncertain pixels carry that class's share.
TEST(SsaLossTest, DistillationWeighsPixelsByTheGroundTruthBranchsEntropy) {
  torch::manual_seed(5);
  torch::Tensor labels = torch::zeros({1, 8, 8}, torch::kLong);
  labels.slice(2, 4, 8).fill_(1);
  SsaTrainingOutputs out = RandomOutputs(1, 2, 8, 8);
  out.gt_logits = LogitsFor(labels, 2, 50);  // Certain everywhere...
  out.gt_logits.index_put_({0, torch::indexing::Slice(), 2, 1}, 0);  // ...
  out.gt_logits.index_put_({0, torch::indexing::Slice(), 5, 6}, 0);  // but 2.
  const double before =
      ComputeSsaLosses(out, labels, kIgnore).distill.item<double>();
  // The per-pixel loss at the two uncertain pixels, one per class: each is
  // an interior pixel, so its class's mean is (0 + its loss) / 2.
  const torch::Tensor log_p = torch::log_softmax(out.logits, 1);
  const double pixel0 = -(0.5 * 0.5 * (log_p[0][0][2][1] + log_p[0][1][2][1]) +
                          0.5 * log_p[0][0][2][1])
                             .item<double>();
  const double pixel1 = -(0.5 * 0.5 * (log_p[0][0][5][6] + log_p[0][1][5][6]) +
                          0.5 * log_p[0][1][5][6])
                             .item<double>();
  EXPECT_NEAR(before, (pixel0 / 2 + pixel1 / 2) / 2, 1e-5);
  out.logits.index_put_({0, torch::indexing::Slice(), 7, 0}, 9.0);
  EXPECT_NEAR(ComputeSsaLosses(out, labels, kIgnore).distill.item<double>(),
              before, 1e-9);
}

// Relations: zero when the adapted prototypes relate no closer than the
// gt branch's; positive when two adapted classes collapse onto each other.
TEST(SsaLossTest, RelationPenalisesOnlyClassesCloserThanTheGroundTruths) {
  torch::manual_seed(3);
  SsaTrainingOutputs out = RandomOutputs(1, 3, 4, 4);
  out.gt_prototypes = torch::eye(3).unsqueeze(0);  // Orthogonal classes.
  out.prototypes = out.gt_prototypes.clone();
  const torch::Tensor labels = torch::zeros({1, 4, 4}, torch::kLong);
  EXPECT_EQ(ComputeSsaLosses(out, labels, kIgnore).relation.item<double>(), 0);
  out.prototypes[0][1] = out.prototypes[0][0];
  EXPECT_GT(ComputeSsaLosses(out, labels, kIgnore).relation.item<double>(),
            1.0);
}

// Position: the cross-entropy of the channel softmaxes, least (the gt
// branch's entropy, times 0.4) where the two agree.
TEST(SsaLossTest, PositionIsLeastWhereTheSpatialPrototypesAgree) {
  torch::manual_seed(4);
  SsaTrainingOutputs out = RandomOutputs(2, 3, 4, 4);
  out.positions = out.gt_positions.clone();
  const torch::Tensor labels = torch::zeros({2, 4, 4}, torch::kLong);
  const torch::Tensor p = torch::softmax(out.gt_positions, -1);
  const double entropy = -(p * p.log()).sum(-1).mean().item<double>();
  EXPECT_NEAR(ComputeSsaLosses(out, labels, kIgnore).position.item<double>(),
              0.4 * entropy, 1e-5);
  out.positions = out.positions + torch::randn_like(out.positions);
  EXPECT_GT(ComputeSsaLosses(out, labels, kIgnore).position.item<double>(),
            0.4 * entropy);
}

}  // namespace
}  // namespace segserve
