#include "model/sgcpnet.h"

#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>
#include <torch/utils.h>

#include <vector>

#include "model/conv_folding.h"

namespace segserve {
namespace sgcpnet {
namespace {

namespace F = torch::nn::functional;

// The backbone keeps PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1);
// the BiFPN part uses EfficientDet's eps 1e-3, momentum 0.01.
constexpr double kBiFpnBnEps = 1e-3;
constexpr double kBiFpnBnMomentum = 0.01;
// Fast normalized fusion: relu(w) / (sum(relu(w)) + epsilon).
constexpr double kFusionEpsilon = 1e-4;
constexpr int64_t kBiFpnChannels = 64;

torch::nn::Conv2d Conv(int64_t in_channels, int64_t out_channels,
                       int64_t kernel_size, int64_t stride, int64_t groups,
                       bool bias) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, kernel_size)
          .stride(stride)
          .padding(kernel_size / 2)
          .groups(groups)
          .bias(bias));
}

torch::nn::BatchNorm2d BiFpnBatchNorm(int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels)
                                    .eps(kBiFpnBnEps)
                                    .momentum(kBiFpnBnMomentum));
}

// 1x1 conv (bias) + BN: the BiFPN's channel projections.
torch::nn::Sequential Projection(int64_t in_channels) {
  return torch::nn::Sequential(
      PaddedConv(in_channels, kBiFpnChannels, /*kernel_size=*/1),
      BiFpnBatchNorm(kBiFpnChannels));
}

torch::Tensor Swish(const torch::Tensor& x) { return x * torch::sigmoid(x); }

// LibTorch's fused kernels: the same function as x * relu6(x + 3) / 6 in one
// pass over memory instead of four.
torch::Tensor HardSwishOf(const torch::Tensor& x) {
  return torch::hardswish(x);
}

// MaxPool2d(3, stride 2, padding 1): the official BiFPN's downsampling.
torch::Tensor Downsample(const torch::Tensor& x) {
  return F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
}

// Nearest resize to `like`'s spatial size, as the official nn.Upsample(size=)
// calls. When the sizes already agree that resize is an exact copy, so it is
// skipped.
torch::Tensor ResizeLike(const torch::Tensor& x, const torch::Tensor& like) {
  if (x.size(2) == like.size(2) && x.size(3) == like.size(3)) return x;
  return F::interpolate(
      x, F::InterpolateFuncOptions()
             .size(std::vector<int64_t>{like.size(2), like.size(3)})
             .mode(torch::kNearest));
}

torch::Tensor NormalizedWeights(const torch::Tensor& w) {
  const torch::Tensor positive = torch::relu(w);
  return positive / (torch::sum(positive, 0) + kFusionEpsilon);
}

// The module at `index` of a Sequential, as its holder type.
template <typename Holder>
Holder At(const torch::nn::Sequential& layers, size_t index) {
  auto impl =
      std::dynamic_pointer_cast<typename Holder::Impl>(layers->ptr(index));
  TORCH_CHECK(impl != nullptr, "unexpected module at ", index);
  return Holder(impl);
}

// A Sequential's conv (Conv2d or PaddedConv) at `index` with the BatchNorm
// after it folded in.
FoldedConv FoldAt(const torch::nn::Sequential& layers, size_t index) {
  const auto bn = At<torch::nn::BatchNorm2d>(layers, index + 1);
  if (auto padded =
          std::dynamic_pointer_cast<PaddedConvImpl>(layers->ptr(index))) {
    return FoldBatchNorm(padded->conv(), bn);
  }
  return FoldBatchNorm(At<torch::nn::Conv2d>(layers, index), bn);
}

torch::Tensor Convolve(const torch::Tensor& x, const FoldedConv& folded) {
  return torch::conv2d(x, folded.weight, folded.bias);
}

}  // namespace

FoldedConv FoldBatchNorm(const torch::nn::Conv2d& conv,
                         const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const ChannelAffine affine = BatchNormAffine(bn);
  FoldedConv folded;
  folded.weight = (conv->weight * affine.scale.view({-1, 1, 1, 1}))
                      .contiguous(at::MemoryFormat::ChannelsLast);
  folded.bias = conv->bias.defined() ? conv->bias * affine.scale + affine.shift
                                     : affine.shift.clone();
  return folded;
}

FusionWeights PrepareFusionWeights(const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  const torch::Tensor weights = NormalizedWeights(w).to(torch::kFloat).cpu();
  return FusionWeights(weights.data_ptr<float>(),
                       weights.data_ptr<float>() + weights.numel());
}

torch::Tensor Fuse(const FusionWeights& prepared, const torch::Tensor& w,
                   std::initializer_list<torch::Tensor> inputs) {
  TORCH_CHECK(inputs.size() >= 2 && inputs.size() == size_t(w.size(0)),
              "fusion of ", inputs.size(), " inputs with ", w.size(0),
              " weights");
  const torch::Tensor* input = inputs.begin();
  if (!prepared.empty()) {
    torch::Tensor sum = input[0] * prepared[0];
    for (size_t i = 1; i < inputs.size(); ++i) sum.add_(input[i], prepared[i]);
    return torch::silu_(sum);
  }
  const torch::Tensor weight = NormalizedWeights(w);
  torch::Tensor sum = weight[0] * input[0];
  for (size_t i = 1; i < inputs.size(); ++i) sum = sum + weight[i] * input[i];
  return Swish(sum);
}

torch::Tensor HardSwishImpl::forward(const torch::Tensor& x) {
  return HardSwishOf(x);
}

torch::Tensor HardSigmoidImpl::forward(const torch::Tensor& x) {
  return torch::hardsigmoid(x);
}

SqueezeExciteImpl::SqueezeExciteImpl(int64_t channels, int64_t reduction) {
  const int64_t reduced = channels / reduction;
  se_ = register_module(
      "se",
      torch::nn::Sequential(
          torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(1)),
          Conv(channels, reduced, 1, 1, 1, /*bias=*/false),
          torch::nn::BatchNorm2d(reduced), torch::nn::ReLU(),
          Conv(reduced, channels, 1, 1, 1, /*bias=*/false),
          torch::nn::BatchNorm2d(channels), HardSigmoid()));
}

void SqueezeExciteImpl::PrepareForInference() {
  reduce_ = FoldAt(se_, 1);
  expand_ = FoldAt(se_, 4);
}

torch::Tensor SqueezeExciteImpl::forward(const torch::Tensor& x) {
  if (!reduce_.weight.defined() || is_training()) return x * se_->forward(x);
  torch::Tensor scale =
      Convolve(torch::adaptive_avg_pool2d(x, {1, 1}), reduce_);
  scale = Convolve(torch::relu_(scale), expand_);
  return x * torch::hardsigmoid_(scale);
}

InvertedResidualImpl::InvertedResidualImpl(const BlockConfig& config)
    : config_(config) {
  // Registration order is the official one (se first), which fixes the
  // order of the state-dict keys.
  if (config.squeeze_excite) {
    se_ = register_module("se", SqueezeExcite(config.out_channels));
  }
  conv1_ = register_module(
      "conv1", Conv(config.in_channels, config.expand_channels, 1, 1, 1,
                    /*bias=*/false));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(config.expand_channels));
  conv2_ = register_module(
      "conv2", Conv(config.expand_channels, config.expand_channels,
                    config.kernel_size, config.stride, config.expand_channels,
                    /*bias=*/false));
  bn2_ = register_module("bn2", torch::nn::BatchNorm2d(config.expand_channels));
  conv3_ = register_module(
      "conv3", Conv(config.expand_channels, config.out_channels, 1, 1, 1,
                    /*bias=*/false));
  bn3_ = register_module("bn3", torch::nn::BatchNorm2d(config.out_channels));
  if (config.stride == 1 && config.in_channels != config.out_channels) {
    shortcut_ = register_module(
        "shortcut", torch::nn::Sequential(
                        Conv(config.in_channels, config.out_channels, 1, 1, 1,
                             /*bias=*/false),
                        torch::nn::BatchNorm2d(config.out_channels)));
  }
}

torch::Tensor InvertedResidualImpl::Activate(const torch::Tensor& x) const {
  if (config_.activation == Activation::kReLU) return torch::relu(x);
  return HardSwishOf(x);
}

torch::Tensor InvertedResidualImpl::ActivateInPlace(torch::Tensor x) const {
  if (config_.activation == Activation::kReLU) return torch::relu_(x);
  return torch::hardswish_(x);
}

void InvertedResidualImpl::PrepareForInference() {
  folded1_ = FoldBatchNorm(conv1_, bn1_);
  folded2_ = FoldBatchNorm(conv2_, bn2_);
  folded3_ = FoldBatchNorm(conv3_, bn3_);
  if (shortcut_) folded_shortcut_ = FoldAt(shortcut_, 0);
}

torch::Tensor InvertedResidualImpl::FoldedForward(const torch::Tensor& x) {
  const int64_t k = config_.kernel_size;
  torch::Tensor out = ActivateInPlace(Convolve(x, folded1_));
  out = ActivateInPlace(torch::conv2d(out, folded2_.weight, folded2_.bias,
                                      config_.stride, k / 2, /*dilation=*/1,
                                      config_.expand_channels));
  out = Convolve(out, folded3_);
  if (se_) out = se_->forward(out);
  if (config_.stride != 1) return out;
  return out.add_(shortcut_ ? Convolve(x, folded_shortcut_) : x);
}

torch::Tensor InvertedResidualImpl::forward(const torch::Tensor& x) {
  if (folded1_.weight.defined() && !is_training()) return FoldedForward(x);
  torch::Tensor out = Activate(bn1_->forward(conv1_->forward(x)));
  out = Activate(bn2_->forward(conv2_->forward(out)));
  out = bn3_->forward(conv3_->forward(out));
  if (se_) out = se_->forward(out);
  if (config_.stride != 1) return out;
  return out + (shortcut_ ? shortcut_->forward(x) : x);
}

PaddedConvImpl::PaddedConvImpl(int64_t in_channels, int64_t out_channels,
                               int64_t kernel_size, bool bias, int64_t groups)
    : conv_(register_module("conv", Conv(in_channels, out_channels, kernel_size,
                                         1, groups, bias))) {}

torch::Tensor PaddedConvImpl::forward(const torch::Tensor& x) {
  return conv_->forward(x);
}

SeparableConvImpl::SeparableConvImpl(int64_t channels)
    : depthwise_conv_(register_module(
          "depthwise_conv",
          PaddedConv(channels, channels, 3, /*bias=*/false, channels))),
      pointwise_conv_(
          register_module("pointwise_conv", PaddedConv(channels, channels, 1))),
      bn_(register_module("bn", BiFpnBatchNorm(channels))) {}

void SeparableConvImpl::PrepareForInference() {
  pointwise_ = FoldBatchNorm(pointwise_conv_->conv(), bn_);
}

torch::Tensor SeparableConvImpl::forward(const torch::Tensor& x) {
  const torch::Tensor depthwise = depthwise_conv_->forward(x);
  if (pointwise_.weight.defined() && !is_training()) {
    return Convolve(depthwise, pointwise_);
  }
  return bn_->forward(pointwise_conv_->forward(depthwise));
}

BiFpnUnitImpl::BiFpnUnitImpl(int64_t channels,
                             const std::array<int64_t, 3>& in_channels) {
  p6_w1_ = register_parameter("p6_w1", torch::ones({2}));
  p6_w2_ = register_parameter("p6_w2", torch::ones({3}));
  p5_w1_ = register_parameter("p5_w1", torch::ones({2}));
  p5_w2_ = register_parameter("p5_w2", torch::ones({3}));
  p4_w1_ = register_parameter("p4_w1", torch::ones({2}));
  p4_w2_ = register_parameter("p4_w2", torch::ones({3}));
  p3_w1_ = register_parameter("p3_w1", torch::ones({2}));
  p7_w2_ = register_parameter("p7_w2", torch::ones({2}));

  p5_down_channel_ =
      register_module("p5_down_channel", Projection(in_channels[2]));
  p4_down_channel_ =
      register_module("p4_down_channel", Projection(in_channels[1]));
  p3_down_channel_ =
      register_module("p3_down_channel", Projection(in_channels[0]));
  p5_to_p6_ = register_module(
      "p5_to_p6",
      torch::nn::Sequential(
          PaddedConv(in_channels[2], channels, 1), BiFpnBatchNorm(channels),
          torch::nn::MaxPool2d(
              torch::nn::MaxPool2dOptions(3).stride(2).padding(1))));
  // The official p6_to_p7 is a parameterless max-pool: see Downsample().
  p4_down_channel_2_ =
      register_module("p4_down_channel_2", Projection(in_channels[1]));
  p5_down_channel_2_ =
      register_module("p5_down_channel_2", Projection(in_channels[2]));

  conv6_up_ = register_module("conv6_up", SeparableConv(channels));
  conv5_up_ = register_module("conv5_up", SeparableConv(channels));
  conv4_up_ = register_module("conv4_up", SeparableConv(channels));
  conv3_up_ = register_module("conv3_up", SeparableConv(channels));
  conv4_down_ = register_module("conv4_down", SeparableConv(channels));
  conv5_down_ = register_module("conv5_down", SeparableConv(channels));
  conv6_down_ = register_module("conv6_down", SeparableConv(channels));
  conv7_down_ = register_module("conv7_down", SeparableConv(channels));
}

void BiFpnUnitImpl::PrepareForInference() {
  prepared_ = Prepared{.p3_down = FoldAt(p3_down_channel_, 0),
                       .p4_down = FoldAt(p4_down_channel_, 0),
                       .p5_down = FoldAt(p5_down_channel_, 0),
                       .p4_down_2 = FoldAt(p4_down_channel_2_, 0),
                       .p5_down_2 = FoldAt(p5_down_channel_2_, 0),
                       .p5_to_p6 = FoldAt(p5_to_p6_, 0),
                       .p6_w1 = PrepareFusionWeights(p6_w1_),
                       .p6_w2 = PrepareFusionWeights(p6_w2_),
                       .p5_w1 = PrepareFusionWeights(p5_w1_),
                       .p5_w2 = PrepareFusionWeights(p5_w2_),
                       .p4_w1 = PrepareFusionWeights(p4_w1_),
                       .p4_w2 = PrepareFusionWeights(p4_w2_),
                       .p3_w1 = PrepareFusionWeights(p3_w1_),
                       .p7_w2 = PrepareFusionWeights(p7_w2_)};
}

torch::Tensor BiFpnUnitImpl::Project(torch::nn::Sequential& layers,
                                     const FoldedConv* folded,
                                     const torch::Tensor& x) {
  return folded != nullptr ? Convolve(x, *folded) : layers->forward(x);
}

Pyramid BiFpnUnitImpl::forward(const torch::Tensor& c3, const torch::Tensor& c4,
                               const torch::Tensor& c5) {
  // Outside training, once prepared: folded projections, fusion weights
  // computed once. Otherwise both come from the parameters.
  const Prepared* prepared =
      prepared_.has_value() && !is_training() ? &*prepared_ : nullptr;
  const FusionWeights none;
  const auto& w = [&](FusionWeights Prepared::*member) -> const FusionWeights& {
    return prepared != nullptr ? prepared->*member : none;
  };
  const auto& folded = [&](FoldedConv Prepared::*member) -> const FoldedConv* {
    return prepared != nullptr ? &(prepared->*member) : nullptr;
  };
  // P6 = max-pool of the projected C5 (p5_to_p6 ends with that pool).
  const torch::Tensor p6_in = prepared != nullptr
                                  ? Downsample(Convolve(c5, prepared->p5_to_p6))
                                  : p5_to_p6_->forward(c5);
  const torch::Tensor p7_in = Downsample(p6_in);
  const torch::Tensor p3_in =
      Project(p3_down_channel_, folded(&Prepared::p3_down), c3);
  torch::Tensor p4_in =
      Project(p4_down_channel_, folded(&Prepared::p4_down), c4);
  torch::Tensor p5_in =
      Project(p5_down_channel_, folded(&Prepared::p5_down), c5);

  // Top-down path.
  const torch::Tensor p6_up = conv6_up_->forward(
      Fuse(w(&Prepared::p6_w1), p6_w1_, {p6_in, ResizeLike(p7_in, p6_in)}));
  const torch::Tensor p5_up = conv5_up_->forward(
      Fuse(w(&Prepared::p5_w1), p5_w1_, {p5_in, ResizeLike(p6_up, p5_in)}));
  const torch::Tensor p4_up = conv4_up_->forward(
      Fuse(w(&Prepared::p4_w1), p4_w1_, {p4_in, ResizeLike(p5_up, p4_in)}));
  const torch::Tensor p3_out = conv3_up_->forward(
      Fuse(w(&Prepared::p3_w1), p3_w1_, {p3_in, ResizeLike(p4_up, p3_in)}));

  // Bottom-up path. The first-time unit re-projects P4 and P5 here with a
  // second pair of 1x1 convs.
  p4_in = Project(p4_down_channel_2_, folded(&Prepared::p4_down_2), c4);
  p5_in = Project(p5_down_channel_2_, folded(&Prepared::p5_down_2), c5);
  const torch::Tensor p4_out =
      conv4_down_->forward(Fuse(w(&Prepared::p4_w2), p4_w2_,
                                {p4_in, ResizeLike(p4_up, p4_in),
                                 ResizeLike(Downsample(p3_out), p4_in)}));
  const torch::Tensor p5_out =
      conv5_down_->forward(Fuse(w(&Prepared::p5_w2), p5_w2_,
                                {p5_in, ResizeLike(p5_up, p5_in),
                                 ResizeLike(Downsample(p4_out), p5_in)}));
  const torch::Tensor p6_out =
      conv6_down_->forward(Fuse(w(&Prepared::p6_w2), p6_w2_,
                                {p6_in, ResizeLike(p6_up, p6_in),
                                 ResizeLike(Downsample(p5_out), p6_in)}));
  const torch::Tensor p7_out = conv7_down_->forward(
      Fuse(w(&Prepared::p7_w2), p7_w2_,
           {p7_in, ResizeLike(Downsample(p6_out), p7_in)}));
  return {p3_out, p4_out, p5_out, p6_out, p7_out};
}

TopDownBottomUpImpl::TopDownBottomUpImpl()
    : unit_(register_module("unit", torch::nn::ModuleList())),
      unit0_(kBiFpnChannels, std::array<int64_t, 3>{40, 112, 320}) {
  unit_->push_back(unit0_);
}

Pyramid TopDownBottomUpImpl::forward(const torch::Tensor& c3,
                                     const torch::Tensor& c4,
                                     const torch::Tensor& c5) {
  return unit0_->forward(c3, c4, c5);
}

TopDownImpl::TopDownImpl(int64_t channels) {
  p6_w1_ = register_parameter("p6_w1", torch::ones({2}));
  p5_w1_ = register_parameter("p5_w1", torch::ones({2}));
  p4_w1_ = register_parameter("p4_w1", torch::ones({2}));
  p3_w1_ = register_parameter("p3_w1", torch::ones({2}));
  conv6_up_ = register_module("conv6_up", SeparableConv(channels));
  conv5_up_ = register_module("conv5_up", SeparableConv(channels));
  conv4_up_ = register_module("conv4_up", SeparableConv(channels));
  conv3_up_ = register_module("conv3_up", SeparableConv(channels));
}

void TopDownImpl::PrepareForInference() {
  prepared_ = {PrepareFusionWeights(p6_w1_), PrepareFusionWeights(p5_w1_),
               PrepareFusionWeights(p4_w1_), PrepareFusionWeights(p3_w1_)};
}

torch::Tensor TopDownImpl::forward(const Pyramid& inputs) {
  const auto& [p3_in, p4_in, p5_in, p6_in, p7_in] = inputs;
  const std::array<FusionWeights, 4> none;
  const auto& [p6_w1, p5_w1, p4_w1, p3_w1] = is_training() ? none : prepared_;
  const torch::Tensor p6_up = conv6_up_->forward(
      Fuse(p6_w1, p6_w1_, {p6_in, ResizeLike(p7_in, p6_in)}));
  const torch::Tensor p5_up = conv5_up_->forward(
      Fuse(p5_w1, p5_w1_, {p5_in, ResizeLike(p6_up, p5_in)}));
  const torch::Tensor p4_up = conv4_up_->forward(
      Fuse(p4_w1, p4_w1_, {p4_in, ResizeLike(p5_up, p4_in)}));
  return conv3_up_->forward(
      Fuse(p3_w1, p3_w1_, {p3_in, ResizeLike(p4_up, p3_in)}));
}

SgcpModuleImpl::SgcpModuleImpl()
    : td_bu_(register_module("td_bu", TopDownBottomUp())),
      td_(register_module("td", TopDown(kBiFpnChannels))) {}

torch::Tensor SgcpModuleImpl::forward(const torch::Tensor& c3,
                                      const torch::Tensor& c4,
                                      const torch::Tensor& c5) {
  return td_->forward(td_bu_->forward(c3, c4, c5));
}

}  // namespace sgcpnet

namespace {

using sgcpnet::Activation;
using sgcpnet::BlockConfig;
using sgcpnet::InvertedResidual;

// The official MobileNetV3-small-style "bneck": kernel, in, expand, out,
// activation, SE, stride. l2 = block 0, l3 = 1..2, l4 = 3..7, l5 = 8..10.
constexpr BlockConfig kBlocks[] = {
    {3, 16, 16, 16, Activation::kReLU, true, 2},
    {3, 16, 72, 24, Activation::kReLU, false, 2},
    {3, 24, 88, 24, Activation::kReLU, false, 1},
    {5, 24, 96, 40, Activation::kHardSwish, true, 2},
    {5, 40, 240, 40, Activation::kHardSwish, true, 1},
    {5, 40, 240, 40, Activation::kHardSwish, true, 1},
    {5, 40, 120, 48, Activation::kHardSwish, true, 1},
    {5, 48, 144, 48, Activation::kHardSwish, true, 1},
    {5, 48, 288, 96, Activation::kHardSwish, true, 2},
    {5, 96, 576, 96, Activation::kHardSwish, true, 1},
    {5, 96, 576, 96, Activation::kHardSwish, true, 1},
};

torch::nn::Sequential Blocks(int first, int last) {
  torch::nn::Sequential blocks;
  for (int i = first; i <= last; ++i) {
    blocks->push_back(InvertedResidual(kBlocks[i]));
  }
  return blocks;
}

// The official MBNet.init_params(): Kaiming-normal (fan-out) convs with zero
// bias, unit BatchNorm.
void InitBackbone(torch::nn::Module& backbone) {
  torch::NoGradGuard no_grad;
  for (const auto& module : backbone.modules(/*include_self=*/true)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, /*a=*/0, torch::kFanOut);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      bn->weight.fill_(1);
      bn->bias.zero_();
    }
  }
}

}  // namespace

SgcpNetImpl::SgcpNetImpl(int64_t num_classes) : num_classes_(num_classes) {
  l1_ = register_module(
      "l1",
      torch::nn::Sequential(
          torch::nn::Conv2d(
              torch::nn::Conv2dOptions(3, 16, 3).stride(2).padding(1).bias(
                  false)),
          torch::nn::BatchNorm2d(16), sgcpnet::HardSwish()));
  l2_ = register_module("l2", InvertedResidual(kBlocks[0]));
  l3_ = register_module("l3", Blocks(1, 2));
  l4_ = register_module("l4", Blocks(3, 7));
  l5_ = register_module("l5", Blocks(8, 10));
  InitBackbone(*l1_);
  InitBackbone(*l2_);
  InitBackbone(*l3_);
  InitBackbone(*l4_);
  InitBackbone(*l5_);

  conv3_ = register_module(
      "conv3", torch::nn::Conv2d(torch::nn::Conv2dOptions(24, 40, 1)));
  conv4_ = register_module(
      "conv4", torch::nn::Conv2d(torch::nn::Conv2dOptions(48, 112, 1)));
  conv5_ = register_module(
      "conv5", torch::nn::Conv2d(torch::nn::Conv2dOptions(96, 320, 1)));
  sgcp_ = register_module("sgcp", sgcpnet::SgcpModule());
  classifier_ = register_module(
      "classifier",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(64, num_classes, 1)));
}

void SgcpNetImpl::PrepareForInference() {
  stem_ = sgcpnet::FoldAt(l1_, 0);
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* block = module->as<sgcpnet::InvertedResidualImpl>()) {
      block->PrepareForInference();
    } else if (auto* se = module->as<sgcpnet::SqueezeExciteImpl>()) {
      se->PrepareForInference();
    } else if (auto* separable = module->as<sgcpnet::SeparableConvImpl>()) {
      separable->PrepareForInference();
    } else if (auto* unit = module->as<sgcpnet::BiFpnUnitImpl>()) {
      unit->PrepareForInference();
    } else if (auto* top_down = module->as<sgcpnet::TopDownImpl>()) {
      top_down->PrepareForInference();
    }
  }
}

torch::Tensor SgcpNetImpl::forward(const torch::Tensor& x) {
  return Classify(Decode(x));
}

torch::Tensor SgcpNetImpl::Classify(const torch::Tensor& features) {
  return classifier_->forward(features);
}

torch::Tensor SgcpNetImpl::Decode(const torch::Tensor& x) {
  // The stem: conv 3x3 / 2 + BN + h-swish.
  torch::Tensor x1;
  if (stem_.weight.defined() && !is_training()) {
    x1 = torch::conv2d(x, stem_.weight, stem_.bias, /*stride=*/2,
                       /*padding=*/1);
    torch::hardswish_(x1);
  } else {
    x1 = l1_->forward(x);
  }
  const torch::Tensor x2 = l2_->forward(x1);
  const torch::Tensor x3 = l3_->forward(x2);
  const torch::Tensor x4 = l4_->forward(x3);
  const torch::Tensor x5 = l5_->forward(x4);
  return sgcp_->forward(conv3_->forward(x3), conv4_->forward(x4),
                        conv5_->forward(x5));
}

}  // namespace segserve
