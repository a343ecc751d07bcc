#include "train/drkd.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include "model/tensor_resize.h"

namespace segserve {

namespace F = torch::nn::functional;

GraphReasoningImpl::GraphReasoningImpl(int64_t channels, int64_t states,
                                       int64_t nodes) {
  state_ = register_module("state", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                        channels, states, 1)));
  node_ = register_module(
      "node", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, nodes, 1)));
  node_conv_ = register_module(
      "node_conv",
      torch::nn::Conv1d(torch::nn::Conv1dOptions(nodes, nodes, 1)));
  state_conv_ = register_module(
      "state_conv",
      torch::nn::Conv1d(
          torch::nn::Conv1dOptions(states, states, 1).bias(false)));
  out_ = register_module(
      "out", torch::nn::Conv2d(
                 torch::nn::Conv2dOptions(states, channels, 1).bias(false)));
}

torch::Tensor GraphReasoningImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0);
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  const torch::Tensor states = state_->forward(x).flatten(2);     // N x S x HW
  const torch::Tensor projection = node_->forward(x).flatten(2);  // N x K x HW
  // Pixels to nodes, normalised by the pixel count so the scale does not
  // depend on the input size.
  torch::Tensor graph = torch::bmm(states, projection.transpose(1, 2)) /
                        static_cast<double>(h * w);  // N x S x K
  // Graph convolution: mix nodes (adjacency), then states.
  graph = graph + node_conv_->forward(graph.transpose(1, 2)).transpose(1, 2);
  graph = torch::relu(state_conv_->forward(graph));
  // Nodes back to pixels.
  const torch::Tensor pixels = torch::bmm(graph, projection);  // N x S x HW
  return out_->forward(pixels.view({n, -1, h, w}));
}

DrkdDistillerImpl::DrkdDistillerImpl(int64_t student_channels,
                                     int64_t teacher_channels,
                                     int64_t num_classes,
                                     const DistillWeights& weights)
    : weights_(weights), num_classes_(num_classes) {
  constexpr int64_t kStates = 64;
  constexpr int64_t kNodes = 32;
  adapter_ =
      register_module("adapter", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                     student_channels, teacher_channels, 1)));
  student_unit_ = register_module(
      "student_unit", GraphReasoning(teacher_channels, kStates, kNodes));
  teacher_unit_ = register_module(
      "teacher_unit", GraphReasoning(teacher_channels, kStates, kNodes));
  for (torch::Tensor& p : teacher_unit_->parameters()) {
    p.set_requires_grad(false);
  }
  relation_filter_ = register_module(
      "relation_filter",
      torch::nn::Sequential(torch::nn::Linear(1, 16), torch::nn::Tanh(),
                            torch::nn::Linear(16, 1)));
}

torch::Tensor DrkdDistillerImpl::ClassRelation(const torch::Tensor& student,
                                               const torch::Tensor& teacher,
                                               const torch::Tensor& labels) {
  const int64_t h = student.size(2);
  const int64_t w = student.size(3);
  // Ground truth at the feature grid (nearest), as one-hot class masks.
  const torch::Tensor small = ResizeLabels(labels, h, w);
  torch::Tensor total = torch::zeros({}, student.options());
  int64_t images = 0;
  for (int64_t i = 0; i < student.size(0); ++i) {
    const torch::Tensor ids = small[i].flatten();
    std::vector<torch::Tensor> masks;
    for (int64_t c = 0; c < num_classes_; ++c) {
      const torch::Tensor mask = (ids == c).to(student.dtype());
      if (mask.sum().item<float>() > 0) masks.push_back(mask);
    }
    if (masks.size() < 2) continue;  // No relation among fewer than two.
    const torch::Tensor m = torch::stack(masks);  // P x HW
    const torch::Tensor weights = m / m.sum(1, true);
    auto prototypes = [&](const torch::Tensor& features) {
      const torch::Tensor f = features[i].flatten(1);  // C x HW
      return F::normalize(torch::mm(weights, f.t()),
                          F::NormalizeFuncOptions().dim(1));  // P x C
    };
    const torch::Tensor ps = prototypes(student);
    const torch::Tensor pt = prototypes(teacher);
    const torch::Tensor rs = torch::mm(ps, ps.t());
    const torch::Tensor rt = torch::mm(pt, pt.t());
    const torch::Tensor filtered =
        relation_filter_->forward(rs.reshape({-1, 1})).reshape(rs.sizes());
    total = total + F::mse_loss(filtered, rt);
    ++images;
  }
  return images == 0 ? total : total / static_cast<double>(images);
}

DistillLosses DrkdDistillerImpl::forward(const torch::Tensor& student_features,
                                         const torch::Tensor& student_logits,
                                         const torch::Tensor& teacher_features,
                                         const torch::Tensor& teacher_logits,
                                         const torch::Tensor& labels) {
  DistillLosses losses;
  losses.total = torch::zeros({}, student_logits.options());
  const int64_t h = teacher_features.size(2);
  const int64_t w = teacher_features.size(3);
  torch::Tensor adapted;
  if (weights_.pixel_relation > 0 || weights_.class_relation > 0) {
    adapted = adapter_->forward(ResizeBilinear(student_features, h, w));
  }
  if (weights_.pixel_relation > 0) {
    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      target = teacher_unit_->forward(teacher_features);
    }
    losses.pixel_relation =
        F::mse_loss(student_unit_->forward(adapted), target);
    losses.total =
        losses.total + weights_.pixel_relation * losses.pixel_relation;
  }
  if (weights_.class_relation > 0) {
    losses.class_relation = ClassRelation(adapted, teacher_features, labels);
    losses.total =
        losses.total + weights_.class_relation * losses.class_relation;
  }
  if (weights_.logits_kl > 0) {
    const double t = weights_.temperature;
    const torch::Tensor s = ResizeBilinear(student_logits, h, w);
    const torch::Tensor log_p_student = torch::log_softmax(s / t, 1);
    const torch::Tensor log_p_teacher =
        torch::log_softmax(teacher_logits / t, 1);
    // Sum over classes, mean over pixels and images.
    losses.logits_kl =
        (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1).mean() *
        (t * t);
    losses.total = losses.total + weights_.logits_kl * losses.logits_kl;
  }
  return losses;
}

}  // namespace segserve
