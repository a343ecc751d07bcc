#include "model/cgrseg_head.h"

#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "model/conv_folding.h"
#include "model/tensor_resize.h"

namespace segserve {
namespace cgrseg {
namespace {

namespace F = torch::nn::functional;

// RCM's layer scale starts here (timm's ls_init_value).
constexpr double kLayerScaleInit = 1e-6;
// mmseg initializes the classifier with N(0, 0.01).
constexpr double kClassifierInitStd = 0.01;
// The pyramid pool's size relative to the coarsest feature.
constexpr int64_t kPoolStride = 2;

torch::nn::Conv2d Conv(int64_t in_channels, int64_t out_channels,
                       torch::ExpandingArray<2> kernel_size, int64_t groups,
                       bool bias) {
  const auto k = *kernel_size;
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, kernel_size)
          .padding(torch::ExpandingArray<2>({k[0] / 2, k[1] / 2}))
          .groups(groups)
          .bias(bias));
}

}  // namespace

torch::Tensor HardSigmoid(const torch::Tensor& x) {
  return torch::hardtanh(x + 3, 0, 6) / 6;
}

torch::Tensor PyramidPool(const std::vector<torch::Tensor>& features) {
  const torch::Tensor& coarsest = features.back();
  const int64_t height = (coarsest.size(2) - 1) / kPoolStride + 1;
  const int64_t width = (coarsest.size(3) - 1) / kPoolStride + 1;
  std::vector<torch::Tensor> pooled;
  pooled.reserve(features.size());
  for (const torch::Tensor& feature : features) {
    pooled.push_back(F::adaptive_avg_pool2d(
        feature, F::AdaptiveAvgPool2dFuncOptions({height, width})));
  }
  return torch::cat(pooled, 1);
}

torch::Tensor GatherPrototypes(const torch::Tensor& features,
                               const torch::Tensor& logits) {
  const int64_t n = features.size(0);
  const int64_t c = features.size(1);
  const int64_t k = logits.size(1);
  const torch::Tensor weights = torch::softmax(logits.reshape({n, k, -1}), 2);
  // N x K x C; the transposed view is read strided by the matmul.
  const torch::Tensor prototypes =
      torch::matmul(weights, features.reshape({n, c, -1}).transpose(1, 2));
  return prototypes.transpose(1, 2).unsqueeze(3);
}

RectangularCalibrationImpl::RectangularCalibrationImpl(
    int64_t channels, int64_t band_kernel_size, int64_t square_kernel_size)
    : padding_(square_kernel_size / 2) {
  dwconv_hw_ = register_module(
      "dwconv_hw",
      Conv(channels, channels, square_kernel_size, channels, /*bias=*/true));
  // ratio 1 in every official config: the band convs are depthwise.
  band_w_ = Conv(channels, channels, {1, band_kernel_size}, channels, true);
  band_bn_ = torch::nn::BatchNorm2d(channels);
  band_h_ = Conv(channels, channels, {band_kernel_size, 1}, channels, true);
  excite_ = register_module(
      "excite", torch::nn::Sequential(band_w_, band_bn_, torch::nn::ReLU(),
                                      band_h_, torch::nn::Sigmoid()));
}

torch::Tensor RectangularCalibrationImpl::forward(const torch::Tensor& x) {
  if (square_weight_.defined()) return FastForward(x);
  // Axial context: the row means plus the column means, broadcast to H x W.
  const torch::Tensor gathered =
      x.mean(3, /*keepdim=*/true) + x.mean(2, /*keepdim=*/true);
  torch::Tensor gate = band_bn_->forward(band_w_->forward(gathered));
  gate = torch::sigmoid(band_h_->forward(torch::relu(gate)));
  return gate * dwconv_hw_->forward(x);
}

void RectangularCalibrationImpl::PrepareForInference(
    const torch::Tensor& output_scale) {
  torch::NoGradGuard no_grad;
  const int64_t channels = output_scale.size(0);
  square_weight_ = dwconv_hw_->weight * output_scale.view({-1, 1, 1, 1});
  square_bias_ = dwconv_hw_->bias * output_scale;
  const ChannelAffine bn = BatchNormAffine(band_bn_);
  band_w_weight_ =
      band_w_->weight.reshape({channels, -1}) * bn.scale.view({-1, 1});
  band_w_bias_ = band_w_->bias * bn.scale + bn.shift;
  band_h_weight_ = band_h_->weight.reshape({channels, -1}).clone();
  band_h_bias_ = band_h_->bias.clone();
}

torch::Tensor RectangularCalibrationImpl::FastForward(const torch::Tensor& x) {
  const torch::Tensor rows = x.mean(3, /*keepdim=*/true);  // N x C x H x 1
  const torch::Tensor cols = x.mean(2, /*keepdim=*/true);  // N x C x 1 x W
  // The 1 x k conv of rows[h] + cols[w] is rows[h] * taps[w] + conv(cols)[w],
  // taps[w] the sum of the kernel taps that land inside the row: two 1-D
  // convs instead of one over the H x W map.
  const torch::Tensor taps =
      DepthwiseBandConv(torch::ones({1, x.size(1), 1, x.size(3)}, x.options()),
                        band_w_weight_, torch::Tensor(), 3);
  const torch::Tensor band =
      DepthwiseBandConv(cols, band_w_weight_, band_w_bias_, 3);
  const torch::Tensor excited = torch::addcmul(band, rows, taps).relu_();
  torch::Tensor gate =
      DepthwiseBandConv(excited, band_h_weight_, band_h_bias_, 2).sigmoid_();
  return gate.mul_(torch::conv2d(x, square_weight_, square_bias_, 1, padding_,
                                 1, x.size(1)));
}

ConvMlpImpl::ConvMlpImpl(int64_t channels, int64_t hidden_channels)
    : fc1_(register_module("fc1", Conv(channels, hidden_channels, 1, 1, true))),
      fc2_(register_module("fc2",
                           Conv(hidden_channels, channels, 1, 1, true))) {}

torch::Tensor ConvMlpImpl::forward(const torch::Tensor& x) {
  const torch::Tensor hidden = fc1_bias_.defined()
                                   ? torch::conv2d(x, fc1_->weight, fc1_bias_)
                                   : fc1_->forward(x);
  return fc2_->forward(torch::gelu(hidden));
}

void ConvMlpImpl::PrepareForInference(const torch::Tensor& input_shift) {
  torch::NoGradGuard no_grad;
  // fc1(x + s) = W x + (W s + b).
  fc1_bias_ =
      fc1_->bias +
      torch::mv(fc1_->weight.reshape({fc1_->weight.size(0), -1}), input_shift);
}

RcmImpl::RcmImpl(int64_t channels, int64_t band_kernel_size,
                 int64_t square_kernel_size, int64_t mlp_ratio) {
  token_mixer_ = register_module(
      "token_mixer",
      RectangularCalibration(channels, band_kernel_size, square_kernel_size));
  norm_ = register_module("norm", torch::nn::BatchNorm2d(channels));
  mlp_ = register_module("mlp", ConvMlp(channels, mlp_ratio * channels));
  gamma_ =
      register_parameter("gamma", torch::full({channels}, kLayerScaleInit));
}

torch::Tensor RcmImpl::forward(const torch::Tensor& x) {
  torch::Tensor mixed = token_mixer_->forward(x);
  // Prepared: norm's scale is in the mixer, its shift in fc1's bias.
  if (!prepared_) mixed = norm_->forward(mixed);
  return torch::addcmul(x, mlp_->forward(mixed), gamma_.view({1, -1, 1, 1}));
}

void RcmImpl::PrepareForInference() {
  TORCH_CHECK(!is_training(), "RCM: PrepareForInference needs eval mode");
  TORCH_CHECK(!prepared_, "RCM: already prepared");
  const ChannelAffine norm = BatchNormAffine(norm_);
  token_mixer_->PrepareForInference(norm.scale);
  mlp_->PrepareForInference(norm.shift);
  prepared_ = true;
}

NeckImpl::NeckImpl(int64_t depth, int64_t channels, int64_t band_kernel_size,
                   int64_t square_kernel_size, int64_t mlp_ratio) {
  transformer_blocks_ =
      register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) {
    blocks_.push_back(
        Rcm(channels, band_kernel_size, square_kernel_size, mlp_ratio));
    transformer_blocks_->push_back(blocks_.back());
  }
}

torch::Tensor NeckImpl::forward(torch::Tensor x) {
  for (Rcm& block : blocks_) x = block->forward(x);
  return x;
}

void NeckImpl::PrepareForInference() {
  for (Rcm& block : blocks_) block->PrepareForInference();
}

ConvBnImpl::ConvBnImpl(int64_t in_channels, int64_t out_channels,
                       int64_t groups, bool relu)
    : relu_(relu),
      depthwise_(groups > 1 && groups == in_channels &&
                 in_channels == out_channels),
      conv_(register_module(
          "conv", Conv(in_channels, out_channels, 1, groups, /*bias=*/false))),
      bn_(register_module("bn", torch::nn::BatchNorm2d(out_channels))) {
  // mmcv ConvModule.init_weights: Kaiming-normal (fan-out, ReLU) convs.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_normal_(conv_->weight, 0, torch::kFanOut,
                                   torch::kReLU);
}

torch::Tensor ConvBnImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (!folded_weight_.defined()) {
    y = bn_->forward(conv_->forward(x));
  } else if (depthwise_) {
    // A depthwise 1x1 conv is a per-channel scale: one multiply-add pass.
    y = torch::addcmul(folded_bias_.view({1, -1, 1, 1}), x,
                       folded_weight_.view({1, -1, 1, 1}));
  } else {
    y = torch::conv2d(x, folded_weight_, folded_bias_);
  }
  return relu_ ? y.relu_() : y;
}

void ConvBnImpl::PrepareForInference() {
  TORCH_CHECK(!is_training(), "ConvBn: PrepareForInference needs eval mode");
  torch::NoGradGuard no_grad;
  const ChannelAffine bn = BatchNormAffine(bn_);
  folded_weight_ = conv_->weight * bn.scale.view({-1, 1, 1, 1});
  folded_bias_ = bn.shift.clone();
}

FuseBlockImpl::FuseBlockImpl(int64_t in_channels, int64_t out_channels)
    : fuse1_(register_module("fuse1",
                             ConvBn(in_channels, out_channels, 1, false))),
      fuse2_(register_module("fuse2",
                             ConvBn(in_channels, out_channels, 1, false))) {}

void FuseBlockImpl::PrepareForInference() {
  fuse1_->PrepareForInference();
  fuse2_->PrepareForInference();
}

torch::Tensor FuseBlockImpl::forward(const torch::Tensor& local,
                                     const torch::Tensor& global) {
  const torch::Tensor gate = ResizeBilinear(
      HardSigmoid(fuse2_->forward(global)), local.size(2), local.size(3));
  return fuse1_->forward(local) * gate;
}

DpgBlockImpl::DpgBlockImpl(int64_t channels) {
  conv_mask_ = register_module("conv_mask", Conv(channels, 1, 1, 1, true));
  auto last = Conv(channels, channels, 1, 1, true);
  channel_mul_conv_ = register_module(
      "channel_mul_conv",
      torch::nn::Sequential(
          Conv(channels, channels, 1, 1, true),
          torch::nn::LayerNorm(torch::nn::LayerNormOptions({channels, 1, 1})),
          torch::nn::ReLU(), last));
  // The official reset_parameters: Kaiming (fan-in) mask, zero last conv,
  // so an untrained block passes x through with a constant 0.5 gate.
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_normal_(conv_mask_->weight, 0, torch::kFanIn,
                                   torch::kReLU);
  conv_mask_->bias.zero_();
  last->weight.zero_();
  last->bias.zero_();
}

torch::Tensor DpgBlockImpl::forward(const torch::Tensor& x,
                                    const torch::Tensor& prototypes) {
  const int64_t n = prototypes.size(0);
  const int64_t c = prototypes.size(1);
  // Attention pooling over the K prototypes.
  const torch::Tensor mask =
      torch::softmax(conv_mask_->forward(prototypes).reshape({n, -1, 1}), 1);
  const torch::Tensor context =
      torch::bmm(prototypes.reshape({n, c, -1}), mask).view({n, c, 1, 1});
  return x * torch::sigmoid(channel_mul_conv_->forward(context));
}

}  // namespace cgrseg

using cgrseg::ConvBn;
using cgrseg::DpgBlock;
using cgrseg::FuseBlock;
using cgrseg::Neck;
using cgrseg::Rcm;

CgrSegHeadImpl::CgrSegHeadImpl(const CgrSegHeadConfig& config)
    : config_(config) {
  TORCH_CHECK(config.in_channels.size() == 3,
              "CGRSeg head: in_channels needs 3 entries (strides 8, 16, 32), "
              "got ",
              config.in_channels.size());
  const int64_t channels = config.channels;
  int64_t total_in = 0;
  for (int64_t c : config.in_channels) total_in += c;

  // Registration order follows the official head: BaseDecodeHead's conv_seg
  // first, then CGRSeg's own modules; it fixes the state-dict key order.
  conv_seg_ =
      register_module("conv_seg", torch::nn::Conv2d(torch::nn::Conv2dOptions(
                                      channels, config.num_classes, 1)));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::normal_(conv_seg_->weight, 0, cgrseg::kClassifierInitStd);
    conv_seg_->bias.zero_();
  }
  // is_dw=True in every config: a depthwise 1x1 conv.
  linear_fuse_ = register_module(
      "linear_fuse", ConvBn(channels, channels, channels, /*relu=*/true));
  trans_ = register_module(
      "trans", Neck(config.neck_depth, total_in, config.neck_band_kernel_size,
                    config.square_kernel_size, config.mlp_ratio));
  sim_ = register_module("SIM", torch::nn::ModuleList());
  meta_ = register_module("meta", torch::nn::ModuleList());
  for (int64_t in_channels : config.in_channels) {
    sim_blocks_.push_back(FuseBlock(in_channels, channels));
    sim_->push_back(sim_blocks_.back());
    meta_blocks_.push_back(Rcm(in_channels, config.band_kernel_size,
                               config.square_kernel_size, config.mlp_ratio));
    meta_->push_back(meta_blocks_.back());
  }
  conv_ = register_module("conv", torch::nn::ModuleList());
  for (size_t i = 0; i + 1 < config.in_channels.size(); ++i) {
    lateral_convs_.push_back(torch::nn::Conv2d(
        torch::nn::Conv2dOptions(channels, config.in_channels[i], 1)));
    conv_->push_back(lateral_convs_.back());
  }
  if (config.classifier == CgrSegClassifier::kDpg) {
    lgc_ = register_module("lgc", DpgBlock(channels));
  } else {
    ssa_ = std::make_unique<SsaClassifier>(*this, channels, config.num_classes);
  }
}

torch::Tensor CgrSegHeadImpl::Reconstruct(
    const std::vector<torch::Tensor>& features) {
  TORCH_CHECK(features.size() == 4,
              "CGRSeg head: expected the backbone's 4 features, got ",
              features.size());
  const std::vector<torch::Tensor> levels(features.begin() + 1, features.end());
  const std::vector<torch::Tensor> global =
      trans_->forward(cgrseg::PyramidPool(levels))
          .split_with_sizes(config_.in_channels, 1);
  torch::Tensor result;
  for (int i = static_cast<int>(levels.size()) - 1; i >= 0; --i) {
    torch::Tensor local = levels[i];
    if (result.defined()) {
      local = local + lateral_convs_[i]->forward(
                          ResizeBilinear(result, local.size(2), local.size(3)));
    }
    result =
        sim_blocks_[i]->forward(meta_blocks_[i]->forward(local), global[i]);
  }
  return result;
}

void CgrSegHeadImpl::PrepareForInference() {
  TORCH_CHECK(!is_training(),
              "CGRSeg head: PrepareForInference needs eval mode");
  linear_fuse_->PrepareForInference();
  trans_->PrepareForInference();
  for (cgrseg::FuseBlock& block : sim_blocks_) block->PrepareForInference();
  for (cgrseg::Rcm& block : meta_blocks_) block->PrepareForInference();
}

SsaTrainingOutputs CgrSegHeadImpl::ForwardForSsaTraining(
    const std::vector<torch::Tensor>& features, const torch::Tensor& labels) {
  TORCH_CHECK(ssa_ != nullptr,
              "CGRSeg head: SSA training needs the SSA classifier");
  const torch::Tensor reconstruction = Reconstruct(features);
  const torch::Tensor fused = linear_fuse_->forward(reconstruction);
  const torch::Tensor coarse = conv_seg_->forward(fused);
  SsaTrainingOutputs outputs =
      ssa_->TrainingForward(coarse, fused, conv_seg_->weight,
                            ResizeLabels(labels, fused.size(2), fused.size(3)));
  outputs.features = reconstruction;
  return outputs;
}

torch::Tensor CgrSegHeadImpl::forward(
    const std::vector<torch::Tensor>& features) {
  return ForwardWithFeatures(features, nullptr);
}

torch::Tensor CgrSegHeadImpl::ForwardWithFeatures(
    const std::vector<torch::Tensor>& features, torch::Tensor* reconstruction) {
  const torch::Tensor x = Reconstruct(features);
  if (reconstruction != nullptr) *reconstruction = x;
  const torch::Tensor fused = linear_fuse_->forward(x);
  const torch::Tensor coarse = conv_seg_->forward(fused);
  if (ssa_) return ssa_->Forward(coarse, fused, conv_seg_->weight);
  const torch::Tensor prototypes = cgrseg::GatherPrototypes(x, coarse);
  return conv_seg_->forward(lgc_->forward(x, prototypes) + x);
}

}  // namespace segserve
