// Relation distillation adapted from DRKD (Dual Relation Knowledge
// Distillation) to a segmentation student, plus KL distillation of the
// logits. Only train/*.cc and tests include this header (LibTorch).
//
// Pixel-wise relation: each side's decoder features go through a graph
// reasoning unit (1x1 state projection to S channels, 1x1 node projection
// to K nodes, graph convolution over the nodes, re-projection to pixels, 1x1
// back to the teacher's width). The student's features first pass a 1x1
// adapter to the teacher's width. The teacher's unit is fixed at its
// seeded initialisation (a learnable one on both sides can collapse to a
// constant and zero the loss); the student's unit and adapter learn. Loss:
// mean squared difference over all elements.
//
// Class-wise relation: per image, class prototypes (mean adapted student
// feature, mean teacher feature over the pixels of each class present in
// the ground truth at the feature resolution), their cosine relation
// matrices P x P among the P classes present, and a learned relation filter
// (an elementwise 1 -> hidden -> 1 MLP on each relation entry, so its size
// does not depend on P) applied to the student's matrix. Loss: mean squared
// difference over the P x P entries, averaged over the images.
//
// Logits: KL(teacher || student) of softmax(logits / T), times T^2,
// averaged over pixels.
#ifndef SEGSERVE_TRAIN_DRKD_H_
#define SEGSERVE_TRAIN_DRKD_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

namespace segserve {

// Graph reasoning over pixels (GloRe-style).
class GraphReasoningImpl : public torch::nn::Module {
 public:
  GraphReasoningImpl(int64_t channels, int64_t states, int64_t nodes);
  // x: N x channels x h x w -> N x channels x h x w.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d state_{nullptr};
  torch::nn::Conv2d node_{nullptr};
  torch::nn::Conv1d node_conv_{nullptr};   // Over the node axis.
  torch::nn::Conv1d state_conv_{nullptr};  // Over the state axis.
  torch::nn::Conv2d out_{nullptr};
};
TORCH_MODULE(GraphReasoning);

struct DistillWeights {
  double pixel_relation = 0;
  double class_relation = 0;
  double logits_kl = 0;
  double temperature = 1;
  bool any() const {
    return pixel_relation > 0 || class_relation > 0 || logits_kl > 0;
  }
};

struct DistillLosses {
  torch::Tensor pixel_relation;  // Undefined when its weight is 0.
  torch::Tensor class_relation;
  torch::Tensor logits_kl;
  // The weighted sum (a zero scalar when every weight is 0).
  torch::Tensor total;
};

// The learnable parts of the distillation (adapter, the student's graph
// unit, the relation filter) and the fixed teacher unit.
class DrkdDistillerImpl : public torch::nn::Module {
 public:
  DrkdDistillerImpl(int64_t student_channels, int64_t teacher_channels,
                    int64_t num_classes, const DistillWeights& weights);

  // Features at 1/8 (resized to the teacher's grid when they differ),
  // logits likewise; `labels`: N x H x W int64 ground truth at the input
  // size (255 = ignore). Teacher tensors carry no gradient.
  DistillLosses forward(const torch::Tensor& student_features,
                        const torch::Tensor& student_logits,
                        const torch::Tensor& teacher_features,
                        const torch::Tensor& teacher_logits,
                        const torch::Tensor& labels);

 private:
  torch::Tensor ClassRelation(const torch::Tensor& student,
                              const torch::Tensor& teacher,
                              const torch::Tensor& labels);

  DistillWeights weights_;
  int64_t num_classes_;
  torch::nn::Conv2d adapter_{nullptr};
  GraphReasoning student_unit_{nullptr};
  GraphReasoning teacher_unit_{nullptr};
  torch::nn::Sequential relation_filter_{nullptr};
};
TORCH_MODULE(DrkdDistiller);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_DRKD_H_
