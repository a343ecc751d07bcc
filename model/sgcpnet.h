// SGCPNet (Hao, Zhou et al., "Real-time semantic segmentation via spatial-
// detail guided context propagation") as a LibTorch C++ frontend module.
//
// Module and parameter names reproduce the official PyTorch implementation
// (github.com/zhouyuan888888/SGCPNet), so an official state dict loads by
// name: `named_parameters()` + `named_buffers()` are exactly the keys of
// shared/model-keys/sgcpnet.keys.txt (tests/data/sgcpnet.keys.txt), 607,826
// parameters for 19 classes.
//
// Architecture, following the official forward (models/SGCPNet.py,
// mbnet.py, SGCPmodule.py):
//   backbone   MobileNetV3-small style: l1 = conv3x3/2 + BN + h-swish, l2..l5
//              = 11 inverted-residual blocks; features x3 (1/8, 24 ch),
//              x4 (1/16, 48 ch), x5 (1/32, 96 ch).
//   laterals   conv3/conv4/conv5: 1x1 convs (bias) to 40/112/320 channels.
//   sgcp       spatial-detail guided context propagation. td_bu: a
//              first-time EfficientDet BiFPN unit over P3..P7 (P6 = 1x1 conv
//              + BN + maxpool(3, 2, 1) of the 320-channel 1/32 map, P7 =
//              maxpool of P6), top-down then bottom-up, fast normalized
//              fusion, swish before every separable conv. td: a second,
//              top-down-only pass over td_bu's five outputs; only its finest
//              output (P3, 1/8, 64 ch) is used, so the context of the coarse
//              levels is propagated down to the spatial-detail resolution.
//   classifier 1x1 conv (bias) on that 1/8 map.
// The forward returns logits at 1/8 of the input (ceil(H/8) x ceil(W/8));
// resizing them to the input is the caller's job (the official evaluation
// resizes outside the model too).
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_SGCPNET_H_
#define SEGSERVE_MODEL_SGCPNET_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <vector>

namespace segserve {
namespace sgcpnet {

// Eval-mode inference (PrepareForInference, below) runs each convolution
// with the BatchNorm after it folded in: copies of the weights (channels-
// last) and biases, kept beside the registered parameters, which stay as
// loaded. The modules use them outside training mode once made.
struct FoldedConv {
  torch::Tensor weight;
  torch::Tensor bias;
};
FoldedConv FoldBatchNorm(const torch::nn::Conv2d& conv,
                         const torch::nn::BatchNorm2d& bn);

// h-swish: x * relu6(x + 3) / 6.
class HardSwishImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(HardSwish);

// h-sigmoid: relu6(x + 3) / 6.
class HardSigmoidImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(HardSigmoid);

// Squeeze-and-excitation: x * se(x) with se = [AdaptiveAvgPool2d(1),
// conv1x1 (C -> C/4), BN, ReLU, conv1x1 (C/4 -> C), BN, h-sigmoid].
class SqueezeExciteImpl : public torch::nn::Module {
 public:
  explicit SqueezeExciteImpl(int64_t channels, int64_t reduction = 4);
  torch::Tensor forward(const torch::Tensor& x);
  // Folds both BatchNorms into their convolutions.
  void PrepareForInference();

 private:
  torch::nn::Sequential se_{nullptr};
  FoldedConv reduce_, expand_;  // PrepareForInference's; undefined before.
};
TORCH_MODULE(SqueezeExcite);

enum class Activation { kReLU, kHardSwish };

struct BlockConfig {
  int64_t kernel_size;
  int64_t in_channels;
  int64_t expand_channels;
  int64_t out_channels;
  Activation activation;
  bool squeeze_excite;
  int64_t stride;
};

// Inverted residual ("Block" in the official code): 1x1 expand + BN + act,
// k x k depthwise (stride s) + BN + act, 1x1 project + BN, then SE on the
// projected output, then a residual when the stride is 1 (through a 1x1
// conv + BN shortcut when the channel count changes).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  explicit InvertedResidualImpl(const BlockConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

  // Folds the BatchNorms into the convolutions; the folded path also runs
  // its activations and residual add in place on its own temporaries.
  void PrepareForInference();

 private:
  torch::Tensor Activate(const torch::Tensor& x) const;
  torch::Tensor ActivateInPlace(torch::Tensor x) const;
  torch::Tensor FoldedForward(const torch::Tensor& x);

  BlockConfig config_;
  SqueezeExcite se_{nullptr};  // Null when the block has no SE.
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  torch::nn::BatchNorm2d bn2_{nullptr};
  torch::nn::Conv2d conv3_{nullptr};
  torch::nn::BatchNorm2d bn3_{nullptr};
  torch::nn::Sequential shortcut_{nullptr};  // Null for an identity residual.
  // PrepareForInference's copies; undefined until then.
  FoldedConv folded1_, folded2_, folded3_, folded_shortcut_;
};
TORCH_MODULE(InvertedResidual);

// The official BiFPN "Conv2d" wrapper: a convolution registered as `conv`,
// padded by kernel_size / 2.
class PaddedConvImpl : public torch::nn::Module {
 public:
  PaddedConvImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
                 bool bias = true, int64_t groups = 1);
  torch::Tensor forward(const torch::Tensor& x);
  const torch::nn::Conv2d& conv() const { return conv_; }

 private:
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(PaddedConv);

// Depthwise 3x3 (no bias) + pointwise 1x1 (bias) + BN(eps 1e-3).
class SeparableConvImpl : public torch::nn::Module {
 public:
  explicit SeparableConvImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  // Folds the BatchNorm into the pointwise convolution.
  void PrepareForInference();

 private:
  PaddedConv depthwise_conv_{nullptr};
  PaddedConv pointwise_conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  FoldedConv pointwise_;  // PrepareForInference's; undefined before.
};
TORCH_MODULE(SeparableConv);

// P3..P7, finest first.
using Pyramid = std::array<torch::Tensor, 5>;

// A fusion node's weights, relu(w) / (sum(relu(w)) + epsilon), computed once
// by PrepareForInference; empty before (forward computes them each time).
using FusionWeights = std::vector<float>;

// swish(w0 * a + w1 * b [+ w2 * c]) with the node's normalized weights:
// from `prepared` when it is not empty (then in one temporary, with SiLU in
// place), else from the parameter `w`.
torch::Tensor Fuse(const FusionWeights& prepared, const torch::Tensor& w,
                   std::initializer_list<torch::Tensor> inputs);
FusionWeights PrepareFusionWeights(const torch::Tensor& w);

// The first-time BiFPN unit ("TD_BU_paths" with first_time=True): builds
// P3..P7 from the three lateral features, fuses top-down then bottom-up.
class BiFpnUnitImpl : public torch::nn::Module {
 public:
  BiFpnUnitImpl(int64_t channels, const std::array<int64_t, 3>& in_channels);
  Pyramid forward(const torch::Tensor& c3, const torch::Tensor& c4,
                  const torch::Tensor& c5);
  // Folds the projections' BatchNorms and computes the fusion weights.
  void PrepareForInference();

 private:
  // PrepareForInference's copies.
  struct Prepared {
    FoldedConv p3_down, p4_down, p5_down, p4_down_2, p5_down_2, p5_to_p6;
    FusionWeights p6_w1, p6_w2, p5_w1, p5_w2, p4_w1, p4_w2, p3_w1, p7_w2;
  };
  // A projection: conv + BN from `layers` (training), or folded.
  torch::Tensor Project(torch::nn::Sequential& layers, const FoldedConv* folded,
                        const torch::Tensor& x);

  std::optional<Prepared> prepared_;
  torch::Tensor p6_w1_, p6_w2_, p5_w1_, p5_w2_, p4_w1_, p4_w2_, p3_w1_, p7_w2_;
  torch::nn::Sequential p5_down_channel_{nullptr};
  torch::nn::Sequential p4_down_channel_{nullptr};
  torch::nn::Sequential p3_down_channel_{nullptr};
  torch::nn::Sequential p5_to_p6_{nullptr};
  torch::nn::Sequential p4_down_channel_2_{nullptr};
  torch::nn::Sequential p5_down_channel_2_{nullptr};
  SeparableConv conv6_up_{nullptr}, conv5_up_{nullptr}, conv4_up_{nullptr},
      conv3_up_{nullptr};
  SeparableConv conv4_down_{nullptr}, conv5_down_{nullptr},
      conv6_down_{nullptr}, conv7_down_{nullptr};
};
TORCH_MODULE(BiFpnUnit);

// "TD_BU": holds the BiFPN unit as `unit.0`.
class TopDownBottomUpImpl : public torch::nn::Module {
 public:
  TopDownBottomUpImpl();
  Pyramid forward(const torch::Tensor& c3, const torch::Tensor& c4,
                  const torch::Tensor& c5);

 private:
  torch::nn::ModuleList unit_{nullptr};
  BiFpnUnit unit0_{nullptr};
};
TORCH_MODULE(TopDownBottomUp);

// "TD": a top-down-only pass over P3..P7. Returns its finest output (the
// official module also returns the intermediate levels, which SGCPNet
// discards).
class TopDownImpl : public torch::nn::Module {
 public:
  explicit TopDownImpl(int64_t channels);
  torch::Tensor forward(const Pyramid& inputs);
  // Computes the fusion weights once.
  void PrepareForInference();

 private:
  // PrepareForInference's: p6_w1, p5_w1, p4_w1, p3_w1.
  std::array<FusionWeights, 4> prepared_;
  torch::Tensor p6_w1_, p5_w1_, p4_w1_, p3_w1_;
  SeparableConv conv6_up_{nullptr}, conv5_up_{nullptr}, conv4_up_{nullptr},
      conv3_up_{nullptr};
};
TORCH_MODULE(TopDown);

// Spatial-detail guided context propagation: td_bu, then td on its outputs.
class SgcpModuleImpl : public torch::nn::Module {
 public:
  SgcpModuleImpl();
  torch::Tensor forward(const torch::Tensor& c3, const torch::Tensor& c4,
                        const torch::Tensor& c5);

 private:
  TopDownBottomUp td_bu_{nullptr};
  TopDown td_{nullptr};
};
TORCH_MODULE(SgcpModule);

}  // namespace sgcpnet

// The whole network. Construction initializes the backbone like the official
// MobileNet (Kaiming-normal fan-out convs, unit BN) and everything else with
// LibTorch's defaults (those of PyTorch), so a fixed torch::manual_seed gives
// a fixed model. In eval mode forward() leaves the module unchanged, so
// concurrent forward calls on one instance are safe; training mode is not.
class SgcpNetImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kDefaultNumClasses = 19;
  // The logits' resolution relative to the input.
  static constexpr int64_t kOutputStride = 8;

  explicit SgcpNetImpl(int64_t num_classes = kDefaultNumClasses);

  // x: N x 3 x H x W normalized RGB (any H, W >= 1; multiples of 32 keep all
  // pyramid levels exactly aligned). Returns N x num_classes x ceil(H/8) x
  // ceil(W/8) logits.
  torch::Tensor forward(const torch::Tensor& x);
  // forward() in two parts: the 1/8 decoder features (kFeatureChannels
  // channels, the context propagation's finest output) and the classifier.
  torch::Tensor Decode(const torch::Tensor& x);
  torch::Tensor Classify(const torch::Tensor& features);
  static constexpr int64_t kFeatureChannels = 64;

  int64_t num_classes() const { return num_classes_; }

  // Prepares every submodule for eval-mode inference: BatchNorms folded
  // into copies of their convolutions (the stem, the inverted residual
  // blocks and their squeeze-excite, the BiFPN's projections and separable
  // convs), fusion weights computed once, activations in place.
  void PrepareForInference();

 private:
  int64_t num_classes_;
  sgcpnet::FoldedConv stem_;  // l1's conv + BN, once prepared.
  torch::nn::Sequential l1_{nullptr};
  sgcpnet::InvertedResidual l2_{nullptr};
  torch::nn::Sequential l3_{nullptr};
  torch::nn::Sequential l4_{nullptr};
  torch::nn::Sequential l5_{nullptr};
  torch::nn::Conv2d conv3_{nullptr};
  torch::nn::Conv2d conv4_{nullptr};
  torch::nn::Conv2d conv5_{nullptr};
  sgcpnet::SgcpModule sgcp_{nullptr};
  torch::nn::Conv2d classifier_{nullptr};
};
TORCH_MODULE(SgcpNet);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SGCPNET_H_
