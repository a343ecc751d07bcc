#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "train/gradient_report.h"
#include "train/teacher_input.h"

namespace segserve {
namespace {

// The teacher's view of the student's batch: its scale (area averages of
// 2x2 blocks at half the input) and its normalization.
TEST(TeacherInputTest, ResizesByTheInputRatioAndRenormalizes) {
  PreprocessOptions student;
  student.height = student.width = 128;
  PreprocessOptions teacher = student;
  teacher.height = teacher.width = 64;
  const torch::Tensor batch = torch::randn({2, 3, 128, 96});
  const torch::Tensor half = TeacherInput(batch, student, teacher, 32);
  ASSERT_EQ(half.sizes(), (std::vector<int64_t>{2, 3, 64, 64}))
      << "48 rounds to the multiple of 32 nearest";
  const torch::Tensor exact = TeacherInput(batch, student, teacher, 1);
  ASSERT_EQ(exact.sizes(), (std::vector<int64_t>{2, 3, 64, 48}));
  EXPECT_TRUE(torch::allclose(exact, torch::avg_pool2d(batch, 2), /*rtol=*/1e-5,
                              /*atol=*/1e-6));
  EXPECT_TRUE(torch::equal(TeacherInput(batch, student, student, 32), batch));

  teacher = student;
  teacher.mean = {0, 0, 0};
  teacher.std = {1, 1, 1};
  const torch::Tensor pixels = TeacherInput(batch, student, teacher, 1);
  for (int c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::allclose(
        pixels.select(1, c),
        batch.select(1, c) * student.std[c] + student.mean[c], 1e-5, 1e-3));
  }
}

// Norms and cosines against the first term's gradient: a term pointing the
// other way reads -1, one on other parameters 0; undefined terms are left
// out, and the graph survives for the step's own backward pass.
TEST(GradientReportTest, NormsAndCosinesAgainstTheFirstTerm) {
  const torch::Tensor a = torch::ones({3}, torch::requires_grad());
  const torch::Tensor b = torch::ones({4}, torch::requires_grad());
  const torch::Tensor ce = a.sum();  // Gradient (1, 1, 1): norm 1.73.
  const std::string line = GradientReport({{"ce", ce},
                                           {"against", -2 * a.sum()},
                                           {"elsewhere", b.sum()},
                                           {"unused", torch::Tensor()}},
                                          {a, b});
  EXPECT_EQ(line,
            "gradients: ce 1.73e+00, against 3.46e+00 (cos -1.00), "
            "elsewhere 2.00e+00 (cos +0.00)");
  ce.backward();
  EXPECT_TRUE(torch::equal(a.grad(), torch::ones({3})));
}

}  // namespace
}  // namespace segserve
