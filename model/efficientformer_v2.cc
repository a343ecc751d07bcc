#include "model/efficientformer_v2.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/activation.h>
#include <torch/utils.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

namespace segserve {
namespace efficientformer_v2 {
namespace {

namespace F = torch::nn::functional;
using torch::indexing::None;
using torch::indexing::Slice;

// The official layer-scale initial value (layer_scale_init_value).
constexpr double kLayerScaleInit = 1e-5;
// Mlp._init_weights: timm's trunc_normal_(std=.02), whose bounds [-2, 2] are
// absolute, i.e. 100 standard deviations.
constexpr double kMlpInitStd = 0.02;
constexpr double kMlpInitBound = 2.0;

torch::nn::Conv2d Conv(int64_t in_channels, int64_t out_channels,
                       int64_t kernel_size, int64_t stride = 1,
                       int64_t groups = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, kernel_size)
          .stride(stride)
          .padding(kernel_size / 2)
          .groups(groups));
}

torch::nn::Conv2d DepthwiseConv(int64_t channels, int64_t stride) {
  return Conv(channels, channels, 3, stride, channels);
}

// conv1x1 + BN: q, k, v and the projections.
torch::nn::Sequential PointwiseConvBn(int64_t in_channels,
                                      int64_t out_channels) {
  return torch::nn::Sequential(Conv(in_channels, out_channels, 1),
                               torch::nn::BatchNorm2d(out_channels));
}

// GELU + conv1x1 + BN: the attention output projections.
torch::nn::Sequential OutputProjection(int64_t in_channels,
                                       int64_t out_channels) {
  return torch::nn::Sequential(torch::nn::GELU(),
                               Conv(in_channels, out_channels, 1),
                               torch::nn::BatchNorm2d(out_channels));
}

torch::Tensor LayerScale(int64_t channels) {
  return torch::full({channels, 1, 1}, kLayerScaleInit);
}

// An attention bias table and its index buffer, registered in the official
// order: the table (a parameter), the unused 7x7-era leftovers, the index.
struct BiasState {
  torch::Tensor table;
  torch::Tensor index;
};

BiasState RegisterBiases(torch::nn::Module& module, int64_t num_heads,
                         int64_t leftover_queries, int64_t leftover_keys,
                         torch::Tensor index, int64_t num_offsets) {
  BiasState state;
  state.table = module.register_parameter(
      "attention_biases_seg", torch::zeros({num_heads, num_offsets}));
  module.register_buffer("attention_biases",
                         torch::zeros({num_heads, leftover_keys}));
  module.register_buffer(
      "attention_bias_idxs",
      torch::ones({leftover_queries, leftover_keys}, torch::kInt64));
  state.index =
      module.register_buffer("attention_bias_idxs_seg", std::move(index));
  return state;
}

void CheckEvenSides(const torch::Tensor& x, const char* layer) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0, layer,
              " needs an N x C x H x W input with even H and W, got ",
              x.sizes());
}

}  // namespace

torch::Tensor BiasIndexTable(int64_t query_resolution, int64_t key_resolution,
                             int64_t step, int64_t* num_offsets) {
  // Offsets are bounded by the larger grid extent, so a dense table of
  // first appearances replaces the official dict.
  const int64_t extent =
      std::max((query_resolution - 1) * step, key_resolution - 1) + 1;
  std::vector<int64_t> number(extent * extent, -1);
  int64_t count = 0;
  const int64_t queries = query_resolution * query_resolution;
  const int64_t keys = key_resolution * key_resolution;
  torch::Tensor table = torch::empty({queries, keys}, torch::kInt64);
  int64_t* out = table.data_ptr<int64_t>();
  for (int64_t q = 0; q < queries; ++q) {
    const int64_t qy = q / query_resolution * step;
    const int64_t qx = q % query_resolution * step;
    for (int64_t k = 0; k < keys; ++k) {
      const int64_t dy = std::abs(qy - k / key_resolution);
      const int64_t dx = std::abs(qx - k % key_resolution);
      int64_t& n = number[dy * extent + dx];
      if (n < 0) n = count++;
      *out++ = n;
    }
  }
  if (num_offsets != nullptr) *num_offsets = count;
  return table;
}

torch::Tensor GatherAttentionBias(const torch::Tensor& biases,
                                  const torch::Tensor& idxs, int64_t queries,
                                  int64_t keys) {
  torch::Tensor bias =
      biases.index_select(1, idxs.reshape({-1}))
          .reshape({1, biases.size(0), idxs.size(0), idxs.size(1)});
  // The official forward always interpolates; at the same size bicubic
  // weights are exactly (0, 1, 0, 0), so skipping it changes nothing.
  if (bias.size(2) == queries && bias.size(3) == keys) return bias;
  return F::interpolate(bias, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{queries, keys})
                                  .mode(torch::kBicubic)
                                  .align_corners(false));
}

MlpImpl::MlpImpl(int64_t channels, int64_t hidden_channels)
    : fc1_(register_module("fc1", Conv(channels, hidden_channels, 1))),
      fc2_(register_module("fc2", Conv(hidden_channels, channels, 1))),
      mid_(register_module("mid", DepthwiseConv(hidden_channels, 1))),
      mid_norm_(
          register_module("mid_norm", torch::nn::BatchNorm2d(hidden_channels))),
      norm1_(register_module("norm1", torch::nn::BatchNorm2d(hidden_channels))),
      norm2_(register_module("norm2", torch::nn::BatchNorm2d(channels))) {
  // The official init touches fc1 and fc2 only (mid is made after it runs).
  torch::NoGradGuard no_grad;
  for (torch::nn::Conv2dImpl* conv : {fc1_.get(), fc2_.get()}) {
    conv->weight.normal_(0, kMlpInitStd).clamp_(-kMlpInitBound, kMlpInitBound);
    conv->bias.zero_();
  }
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = torch::gelu(norm1_->forward(fc1_->forward(x)));
  out = torch::gelu(mid_norm_->forward(mid_->forward(out)));
  return norm2_->forward(fc2_->forward(out));
}

FfnImpl::FfnImpl(int64_t channels, int64_t hidden_channels)
    : layer_scale_2_(register_parameter("layer_scale_2", LayerScale(channels))),
      mlp_(register_module("mlp", Mlp(channels, hidden_channels))) {}

torch::Tensor FfnImpl::forward(const torch::Tensor& x) {
  return x + layer_scale_2_ * mlp_->forward(x);
}

Attention4DImpl::Attention4DImpl(int64_t channels, int64_t resolution,
                                 int64_t stride)
    : stride_(stride), bias_resolution_((resolution + stride - 1) / stride) {
  TORCH_CHECK(stride == 1 || stride == 2, "Attention4D stride must be 1 or 2");
  constexpr int64_t kQueryKeyChannels = kNumHeads * kKeyDim;
  constexpr int64_t kValueChannels = kNumHeads * kKeyDim * kAttnRatio;
  int64_t num_offsets = 0;
  torch::Tensor index =
      BiasIndexTable(bias_resolution_, bias_resolution_, 1, &num_offsets);
  const BiasState biases =
      RegisterBiases(*this, kNumHeads, 49, 49, std::move(index), num_offsets);
  attention_biases_seg_ = biases.table;
  attention_bias_idxs_seg_ = biases.index;

  if (stride_ != 1) {
    stride_conv_ = register_module(
        "stride_conv", torch::nn::Sequential(DepthwiseConv(channels, stride_),
                                             torch::nn::BatchNorm2d(channels)));
  }
  q_ = register_module("q", PointwiseConvBn(channels, kQueryKeyChannels));
  k_ = register_module("k", PointwiseConvBn(channels, kQueryKeyChannels));
  v_ = register_module("v", PointwiseConvBn(channels, kValueChannels));
  v_local_ = register_module(
      "v_local", torch::nn::Sequential(DepthwiseConv(kValueChannels, 1),
                                       torch::nn::BatchNorm2d(kValueChannels)));
  talking_head1_ =
      register_module("talking_head1", Conv(kNumHeads, kNumHeads, 1));
  talking_head2_ =
      register_module("talking_head2", Conv(kNumHeads, kNumHeads, 1));
  proj_ = register_module("proj", OutputProjection(kValueChannels, channels));
}

torch::Tensor Attention4DImpl::Bias(int64_t queries, int64_t keys) const {
  return GatherAttentionBias(attention_biases_seg_, attention_bias_idxs_seg_,
                             queries, keys);
}

torch::Tensor Attention4DImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = input;
  if (stride_conv_) {
    // The official forward halves H and W, which is exact for even sides
    // only.
    CheckEvenSides(x, "Attention4D with stride 2");
    x = stride_conv_->forward(x);
  }
  const int64_t batch = x.size(0);
  const int64_t height = x.size(2);
  const int64_t width = x.size(3);
  const int64_t positions = height * width;
  const double scale = 1.0 / std::sqrt(static_cast<double>(kKeyDim));
  const int64_t value_dim = kKeyDim * kAttnRatio;

  const torch::Tensor q = q_->forward(x)
                              .reshape({batch, kNumHeads, kKeyDim, positions})
                              .transpose(2, 3);
  const torch::Tensor k =
      k_->forward(x).reshape({batch, kNumHeads, kKeyDim, positions});
  torch::Tensor v = v_->forward(x);
  const torch::Tensor v_local = v_local_->forward(v);
  v = v.reshape({batch, kNumHeads, value_dim, positions}).transpose(2, 3);

  torch::Tensor attn = torch::matmul(q, k) * scale + Bias(positions, positions);
  attn = talking_head1_->forward(attn).softmax(-1);
  attn = talking_head2_->forward(attn);
  torch::Tensor out = torch::matmul(attn, v).transpose(2, 3).reshape(
                          {batch, kNumHeads * value_dim, height, width}) +
                      v_local;
  if (stride_conv_) {
    out = F::interpolate(out, F::InterpolateFuncOptions()
                                  .scale_factor(std::vector<double>{
                                      static_cast<double>(stride_),
                                      static_cast<double>(stride_)})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
  }
  return proj_->forward(out);
}

AttnFfnImpl::AttnFfnImpl(int64_t channels, int64_t hidden_channels,
                         int64_t resolution, int64_t stride)
    : layer_scale_1_(register_parameter("layer_scale_1", LayerScale(channels))),
      layer_scale_2_(register_parameter("layer_scale_2", LayerScale(channels))),
      token_mixer_(register_module("token_mixer",
                                   Attention4D(channels, resolution, stride))),
      mlp_(register_module("mlp", Mlp(channels, hidden_channels))) {}

torch::Tensor AttnFfnImpl::forward(const torch::Tensor& x) {
  const torch::Tensor mixed = x + layer_scale_1_ * token_mixer_->forward(x);
  return mixed + layer_scale_2_ * mlp_->forward(mixed);
}

LocalGlobalQueryImpl::LocalGlobalQueryImpl(int64_t in_channels,
                                           int64_t out_channels)
    : local_(register_module(
          "local", torch::nn::Sequential(DepthwiseConv(in_channels, 2)))),
      proj_(register_module("proj",
                            PointwiseConvBn(in_channels, out_channels))) {}

torch::Tensor LocalGlobalQueryImpl::forward(const torch::Tensor& x) {
  // The official "pool" is AvgPool2d(1, 2, 0): a stride-2 subsampling.
  const torch::Tensor pooled =
      x.index({Slice(), Slice(), Slice(None, None, 2), Slice(None, None, 2)});
  return proj_->forward(local_->forward(x) + pooled);
}

Attention4DDownsampleImpl::Attention4DDownsampleImpl(int64_t in_channels,
                                                     int64_t out_channels,
                                                     int64_t resolution)
    : bias_resolution_(resolution) {
  constexpr int64_t kQueryKeyChannels = kNumHeads * kKeyDim;
  constexpr int64_t kValueChannels = kNumHeads * kKeyDim * kAttnRatio;
  const int64_t query_resolution = (resolution + 1) / 2;
  // ceil(resolution / query_resolution): the query grid's step in key
  // positions.
  const int64_t step = (resolution + query_resolution - 1) / query_resolution;
  int64_t num_offsets = 0;
  torch::Tensor index =
      BiasIndexTable(query_resolution, resolution, step, &num_offsets);
  const BiasState biases =
      RegisterBiases(*this, kNumHeads, 49, 196, std::move(index), num_offsets);
  attention_biases_seg_ = biases.table;
  attention_bias_idxs_seg_ = biases.index;

  q_ = register_module("q", LocalGlobalQuery(in_channels, kQueryKeyChannels));
  k_ = register_module("k", PointwiseConvBn(in_channels, kQueryKeyChannels));
  v_ = register_module("v", PointwiseConvBn(in_channels, kValueChannels));
  v_local_ = register_module(
      "v_local", torch::nn::Sequential(DepthwiseConv(kValueChannels, 2),
                                       torch::nn::BatchNorm2d(kValueChannels)));
  proj_ =
      register_module("proj", OutputProjection(kValueChannels, out_channels));
}

torch::Tensor Attention4DDownsampleImpl::Bias(int64_t queries,
                                              int64_t keys) const {
  return GatherAttentionBias(attention_biases_seg_, attention_bias_idxs_seg_,
                             queries, keys);
}

torch::Tensor Attention4DDownsampleImpl::forward(const torch::Tensor& x) {
  CheckEvenSides(x, "Attention4DDownsample");
  const int64_t batch = x.size(0);
  const int64_t height = x.size(2);
  const int64_t width = x.size(3);
  const int64_t keys = height * width;
  const int64_t queries = keys / 4;
  const double scale = 1.0 / std::sqrt(static_cast<double>(kKeyDim));
  const int64_t value_dim = kKeyDim * kAttnRatio;

  const torch::Tensor q = q_->forward(x)
                              .reshape({batch, kNumHeads, kKeyDim, queries})
                              .transpose(2, 3);
  const torch::Tensor k =
      k_->forward(x).reshape({batch, kNumHeads, kKeyDim, keys});
  torch::Tensor v = v_->forward(x);
  const torch::Tensor v_local = v_local_->forward(v);
  v = v.reshape({batch, kNumHeads, value_dim, keys}).transpose(2, 3);

  const torch::Tensor attn =
      (torch::matmul(q, k) * scale + Bias(queries, keys)).softmax(-1);
  const torch::Tensor out =
      torch::matmul(attn, v).transpose(2, 3).reshape(
          {batch, kNumHeads * value_dim, height / 2, width / 2}) +
      v_local;
  return proj_->forward(out);
}

EmbeddingImpl::EmbeddingImpl(int64_t in_channels, int64_t out_channels,
                             bool attention, int64_t resolution) {
  if (attention) {
    attn_ = register_module(
        "attn", Attention4DDownsample(in_channels, out_channels, resolution));
    conv_ = register_module("conv", Conv(in_channels, out_channels, 3, 2));
    bn_ = register_module("bn", torch::nn::BatchNorm2d(out_channels));
  } else {
    proj_ = register_module("proj", Conv(in_channels, out_channels, 3, 2));
    norm_ = register_module("norm", torch::nn::BatchNorm2d(out_channels));
  }
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& x) {
  if (attn_) return attn_->forward(x) + bn_->forward(conv_->forward(x));
  return norm_->forward(proj_->forward(x));
}

}  // namespace efficientformer_v2

namespace {

using efficientformer_v2::AttnFfn;
using efficientformer_v2::Embedding;
using efficientformer_v2::Ffn;

constexpr int kNumStages = 4;

struct VariantConfig {
  std::array<int64_t, kNumStages> widths;
  // The official expansion_ratios_*: one MLP ratio per block, so their sizes
  // are the stage depths.
  std::array<std::vector<int64_t>, kNumStages> expansion_ratios;
  // How many blocks at the end of stages 3 and 4 are attention blocks.
  int64_t vit_num;
};

// EfficientFormer_width, EfficientFormer_depth, expansion_ratios_* and the
// efficientformerv2_*_feat vit_num of the official code.
VariantConfig ConfigOf(EfficientFormerV2Variant variant) {
  switch (variant) {
    case EfficientFormerV2Variant::kS1:
      return {{32, 48, 120, 224},
              {{{4, 4, 4},
                {4, 4, 4},
                {4, 4, 3, 3, 3, 3, 4, 4, 4},
                {4, 4, 3, 3, 4, 4}}},
              2};
    case EfficientFormerV2Variant::kS2:
      return {{32, 64, 144, 288},
              {{{4, 4, 4, 4},
                {4, 4, 4, 4},
                {4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4},
                {4, 4, 3, 3, 3, 3, 4, 4}}},
              4};
    case EfficientFormerV2Variant::kL:
      break;
  }
  return {{40, 80, 192, 384},
          {{{4, 4, 4, 4, 4},
            {4, 4, 4, 4, 4},
            {4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4},
            {4, 4, 4, 3, 3, 3, 3, 4, 4, 4}}},
          6};
}

// The feature side of stage `stage` at the bias input size:
// ceil(512 / 2^(stage + 2)).
int64_t StageResolution(int stage) {
  const int64_t stride = int64_t{1} << (stage + 2);
  return (efficientformer_v2::kBiasInputSize + stride - 1) / stride;
}

torch::nn::Sequential Stage(const VariantConfig& config, int stage) {
  const int64_t channels = config.widths[stage];
  const std::vector<int64_t>& ratios = config.expansion_ratios[stage];
  const int64_t depth = static_cast<int64_t>(ratios.size());
  torch::nn::Sequential blocks;
  for (int64_t block = 0; block < depth; ++block) {
    const int64_t hidden = channels * ratios[block];
    if (stage >= 2 && block > depth - 1 - config.vit_num) {
      // Stage 3 attends at half resolution; stage 4 at full.
      const int64_t stride = stage == 2 ? 2 : 1;
      blocks->push_back(
          AttnFfn(channels, hidden, StageResolution(stage), stride));
    } else {
      blocks->push_back(Ffn(channels, hidden));
    }
  }
  return blocks;
}

}  // namespace

EfficientFormerV2Impl::EfficientFormerV2Impl(EfficientFormerV2Variant variant) {
  const VariantConfig config = ConfigOf(variant);
  out_channels_.assign(config.widths.begin(), config.widths.end());
  const int64_t stem_channels = config.widths[0];
  patch_embed_ = register_module(
      "patch_embed",
      torch::nn::Sequential(
          efficientformer_v2::Conv(3, stem_channels / 2, 3, 2),
          torch::nn::BatchNorm2d(stem_channels / 2), torch::nn::GELU(),
          efficientformer_v2::Conv(stem_channels / 2, stem_channels, 3, 2),
          torch::nn::BatchNorm2d(stem_channels), torch::nn::GELU()));
  network_ = register_module("network", torch::nn::ModuleList());
  for (int stage = 0; stage < kNumStages; ++stage) {
    if (stage > 0) {
      // The last embedding downsamples with attention too ("asub").
      const int from = stage - 1;
      embeddings_.push_back(Embedding(config.widths[from], config.widths[stage],
                                      /*attention=*/from >= 2,
                                      StageResolution(from)));
      network_->push_back(embeddings_.back());
    }
    stages_.push_back(Stage(config, stage));
    network_->push_back(stages_.back());
  }
  // Puts the BatchNorms in eval mode (see train()).
  train(is_training());
}

std::vector<torch::Tensor> EfficientFormerV2Impl::forward(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) > 0 &&
                  x.size(3) > 0 && x.size(2) % 32 == 0 && x.size(3) % 32 == 0,
              "EfficientFormerV2 needs an N x 3 x H x W input with H and W "
              "positive multiples of 32, got ",
              x.sizes());
  x = patch_embed_->forward(x);
  std::vector<torch::Tensor> features;
  features.reserve(stages_.size());
  for (size_t stage = 0; stage < stages_.size(); ++stage) {
    if (stage > 0) x = embeddings_[stage - 1]->forward(x);
    x = stages_[stage]->forward(x);
    features.push_back(x);
  }
  return features;
}

void EfficientFormerV2Impl::set_frozen_batch_norm(bool frozen) {
  frozen_batch_norm_ = frozen;
  train(is_training());
}

void EfficientFormerV2Impl::train(bool on) {
  torch::nn::Module::train(on);
  if (!on || !frozen_batch_norm_) return;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2d>()) bn->eval();
  }
}

}  // namespace segserve
