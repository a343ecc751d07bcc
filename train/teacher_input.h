// Distillation between inputs of different sizes: what the teacher sees of
// the student's batch. Only train/*.cc and tests include this header
// (LibTorch).
#ifndef SEGSERVE_TRAIN_TEACHER_INPUT_H_
#define SEGSERVE_TRAIN_TEACHER_INPUT_H_

#include <torch/types.h>

#include <cstdint>

#include "common/preprocess_options.h"

namespace segserve {

// The student's normalized batch (N x 3 x H x W) at the teacher's scale:
// resized by the ratio of their input sizes (area averaging, or bilinear
// where it grows; each side rounded to a multiple of `teacher_multiple`, at
// least one, so the aspect may change slightly) and renormalized when
// their mean or std differ. A teacher trained on whole inputs should see
// whole inputs, so the student should train on whole inputs too (crop =
// its input size): a crop shrinks to a grid the teacher never saw.
torch::Tensor TeacherInput(const torch::Tensor& input,
                           const PreprocessOptions& student,
                           const PreprocessOptions& teacher,
                           int64_t teacher_multiple);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_TEACHER_INPUT_H_
