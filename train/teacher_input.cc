#include "train/teacher_input.h"

#include <torch/nn/functional/upsampling.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace segserve {

namespace F = torch::nn::functional;

torch::Tensor TeacherInput(const torch::Tensor& input,
                           const PreprocessOptions& student,
                           const PreprocessOptions& teacher,
                           int64_t teacher_multiple) {
  torch::Tensor x = input;
  if (student.mean != teacher.mean || student.std != teacher.std) {
    auto per_channel = [&x](const std::array<float, 3>& v) {
      return torch::tensor({v[0], v[1], v[2]}, x.options()).view({1, 3, 1, 1});
    };
    x = (x * per_channel(student.std) + per_channel(student.mean) -
         per_channel(teacher.mean)) /
        per_channel(teacher.std);
  }
  const int64_t multiple = std::max<int64_t>(1, teacher_multiple);
  auto side = [multiple](int64_t size, int teacher_input, int student_input) {
    const double scaled =
        static_cast<double>(size) * teacher_input / student_input;
    return std::max<int64_t>(1, std::llround(scaled / multiple)) * multiple;
  };
  const int64_t h = side(x.size(2), teacher.height, student.height);
  const int64_t w = side(x.size(3), teacher.width, student.width);
  if (h == x.size(2) && w == x.size(3)) return x;
  // Area averaging shrinks without aliasing; enlarging it would repeat
  // pixels, so a larger teacher input is interpolated.
  F::InterpolateFuncOptions resize;
  resize.size(std::vector<int64_t>{h, w});
  if (h <= x.size(2) && w <= x.size(3)) {
    resize.mode(torch::kArea);
  } else {
    resize.mode(torch::kBilinear).align_corners(false);
  }
  return F::interpolate(x, resize);
}

}  // namespace segserve
