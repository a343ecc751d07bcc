#include "train/drkd.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace segserve {
namespace {

TEST(GraphReasoningTest, KeepsTheFeatureShapeForAnySize) {
  torch::manual_seed(0);
  GraphReasoning unit(32, 16, 8);
  for (const auto& [h, w] : {std::pair{8, 8}, std::pair{5, 11}}) {
    const torch::Tensor y = unit->forward(torch::randn({2, 32, h, w}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 32, h, w}));
  }
}

DistillWeights AllTerms() {
  DistillWeights weights;
  weights.pixel_relation = 1;
  weights.class_relation = 1;
  weights.logits_kl = 1;
  return weights;
}

TEST(DrkdDistillerTest, IdenticalLogitsHaveNoKlAndEveryTermIsFinite) {
  torch::manual_seed(0);
  DrkdDistiller distiller(16, 32, 4, AllTerms());
  const torch::Tensor student = torch::randn({2, 16, 8, 8});
  const torch::Tensor teacher = torch::randn({2, 32, 8, 8});
  const torch::Tensor logits = torch::randn({2, 4, 8, 8});
  const torch::Tensor labels = torch::randint(0, 4, {2, 64, 64});
  const DistillLosses losses =
      distiller->forward(student, logits, teacher, logits, labels);
  EXPECT_NEAR(losses.logits_kl.item<double>(), 0, 1e-6);
  EXPECT_GT(losses.pixel_relation.item<double>(), 0);
  EXPECT_GT(losses.class_relation.item<double>(), 0);
  EXPECT_TRUE(torch::isfinite(losses.total).item<bool>());
}

TEST(DrkdDistillerTest, GradientsReachTheStudentButNotTheTeacherUnit) {
  torch::manual_seed(0);
  DrkdDistiller distiller(16, 32, 4, AllTerms());
  const torch::Tensor student =
      torch::randn({2, 16, 8, 8}).set_requires_grad(true);
  const torch::Tensor student_logits =
      torch::randn({2, 4, 8, 8}).set_requires_grad(true);
  const DistillLosses losses = distiller->forward(
      student, student_logits, torch::randn({2, 32, 8, 8}),
      torch::randn({2, 4, 8, 8}), torch::randint(0, 4, {2, 64, 64}));
  losses.total.backward();
  EXPECT_GT(student.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(student_logits.grad().abs().sum().item<double>(), 0);
  for (const auto& named : distiller->named_parameters()) {
    const bool teacher_side = named.key().rfind("teacher_unit.", 0) == 0;
    EXPECT_EQ(named.value().requires_grad(), !teacher_side) << named.key();
  }
}

TEST(DrkdDistillerTest, ClassRelationNeedsTwoClassesPresent) {
  torch::manual_seed(0);
  DistillWeights weights;
  weights.class_relation = 1;
  DrkdDistiller distiller(16, 32, 4, weights);
  const torch::Tensor one_class = torch::zeros({1, 64, 64}, torch::kLong);
  const DistillLosses losses = distiller->forward(
      torch::randn({1, 16, 8, 8}), torch::randn({1, 4, 8, 8}),
      torch::randn({1, 32, 8, 8}), torch::randn({1, 4, 8, 8}), one_class);
  EXPECT_EQ(losses.class_relation.item<double>(), 0);
  EXPECT_FALSE(losses.pixel_relation.defined()) << "weight 0: not computed";
}

TEST(DrkdDistillerTest, ResizesStudentFeaturesToTheTeachersGrid) {
  torch::manual_seed(0);
  DrkdDistiller distiller(16, 32, 4, AllTerms());
  const DistillLosses losses = distiller->forward(
      torch::randn({1, 16, 16, 16}), torch::randn({1, 4, 16, 16}),
      torch::randn({1, 32, 8, 8}), torch::randn({1, 4, 8, 8}),
      torch::randint(0, 4, {1, 128, 128}));
  EXPECT_TRUE(torch::isfinite(losses.total).item<bool>());
}

}  // namespace
}  // namespace segserve
