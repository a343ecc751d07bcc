// Which loss terms steer training: the gradient each term alone gives the
// student's parameters, its norm and its cosine with the first term's (the
// cross-entropy). A term whose gradient is tiny, or points against the
// cross-entropy's, cannot help however its value moves. Costs one backward
// pass per term, so the trainer runs it only on the steps it logs
// (TrainerOptions::report_gradients). Only train/*.cc and tests include
// this header (LibTorch).
#ifndef SEGSERVE_TRAIN_GRADIENT_REPORT_H_
#define SEGSERVE_TRAIN_GRADIENT_REPORT_H_

#include <torch/types.h>

#include <string>
#include <vector>

namespace segserve {

struct WeightedLoss {
  std::string name;
  torch::Tensor value;  // A scalar with its weight applied; may be undefined.
};

// "gradients: ce 1.2e-01, kl 4.0e-02 (cos +0.31), ..." over `parameters`
// (those that require grad). Terms with an undefined value are left out;
// the graph is kept for the training step's own backward pass.
std::string GradientReport(const std::vector<WeightedLoss>& terms,
                           const std::vector<torch::Tensor>& parameters);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_GRADIENT_REPORT_H_
