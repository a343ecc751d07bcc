// EfficientFormerV2 (Li et al., "Rethinking Vision Transformers for
// MobileNet Size and Speed") as the feature backbone of CGRSeg, written with
// the LibTorch C++ frontend.
//
// The module follows the backbone CGRSeg was trained with
// (github.com/nizhenliang/CGRSeg, mmseg/models/backbones/efficientformer_v2.py,
// classes efficientformerv2_{s1,s2,l}_feat), which differs from the
// classification model of snap-research/EfficientFormer in its attention
// biases: every attention layer holds a full-resolution table
// `attention_biases_seg` (heads x offsets) and its index buffer
// `attention_bias_idxs_seg`, built for a 512x512 input, next to the unused
// 7x7 leftovers `attention_biases` / `attention_bias_idxs`. The module's
// parameter and buffer names, shapes and dtypes are exactly those keys of the
// official checkpoints (shared/model-keys/cgrseg_{t,b,l}.keys.txt without
// their `backbone.` prefix), so an official state dict loads strictly by
// name. Parameters: S1 5,748,360, S2 12,151,408, L 25,578,016.
//
// Architecture (official forward, eval mode; exact GELU everywhere, BatchNorm
// eps 1e-5):
//   patch_embed  conv3x3/2 + BN + GELU, conv3x3/2 + BN + GELU (stride 4).
//   network.0,2,4,6  the four stages: FFN blocks (x + ls2 * mlp(x), mlp =
//                conv1x1 + BN + GELU, depthwise 3x3 + BN + GELU, conv1x1 +
//                BN); the last vit_num blocks of stages 3 and 4 are AttnFFN
//                blocks (x + ls1 * attn(x) first). Stage 3's attention runs at
//                half resolution (depthwise 3x3/2 + BN in, bilinear x2 out).
//   network.1,3  conv3x3/2 + BN embeddings.
//   network.5    conv3x3/2 + BN plus Attention4DDownsample (local-global
//                query: depthwise 3x3/2 conv + stride-2 subsampling).
// Attention4D: multi-head attention over all positions with key_dim 32,
// 8 heads, value dim 128 per head, talking heads before and after the
// softmax, a depthwise 3x3 "v_local" branch added to the output, GELU +
// conv1x1 + BN projection. The relative-position bias is gathered from
// attention_biases_seg through attention_bias_idxs_seg and, when the number
// of positions differs from the 512x512 one it was built for, resized
// bicubically (align_corners=false) as a whole N x N matrix, as the official
// forward does.
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_EFFICIENTFORMER_V2_H_
#define SEGSERVE_MODEL_EFFICIENTFORMER_V2_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace segserve {

enum class EfficientFormerV2Variant { kS1, kS2, kL };

namespace efficientformer_v2 {

// The input side both attention biases were built for.
inline constexpr int64_t kBiasInputSize = 512;

// The official relative-position index table: for each query position
// (row-major on a query_resolution^2 grid) and key position (row-major on a
// key_resolution^2 grid), the number of the offset
// (|qy * step - ky|, |qx * step - kx|), offsets numbered in the order they
// first appear. Returns a (queries, keys) int64 tensor; *num_offsets gets the
// number of distinct offsets.
torch::Tensor BiasIndexTable(int64_t query_resolution, int64_t key_resolution,
                             int64_t step, int64_t* num_offsets);

// biases[:, idxs] (heads x queries x keys), resized bicubically
// (align_corners=false) to queries x keys when its size differs. Returns
// 1 x heads x queries x keys.
torch::Tensor GatherAttentionBias(const torch::Tensor& biases,
                                  const torch::Tensor& idxs, int64_t queries,
                                  int64_t keys);

// The channel MLP ("Mlp" with mid_conv): fc1 (1x1) + norm1 + GELU, mid
// (depthwise 3x3) + mid_norm + GELU, fc2 (1x1) + norm2.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t channels, int64_t hidden_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d fc1_{nullptr};
  torch::nn::Conv2d fc2_{nullptr};
  torch::nn::Conv2d mid_{nullptr};
  torch::nn::BatchNorm2d mid_norm_{nullptr};
  torch::nn::BatchNorm2d norm1_{nullptr};
  torch::nn::BatchNorm2d norm2_{nullptr};
};
TORCH_MODULE(Mlp);

// "FFN": x + layer_scale_2 * mlp(x).
class FfnImpl : public torch::nn::Module {
 public:
  FfnImpl(int64_t channels, int64_t hidden_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor layer_scale_2_;
  Mlp mlp_{nullptr};
};
TORCH_MODULE(Ffn);

// Attention4D. `resolution` is the feature side at the bias input size;
// with stride 2 the attention runs on a depthwise-strided copy of the input
// (its bias grid is ceil(resolution / 2)) and the result is upsampled back.
// Inputs must have even sides when the stride is 2.
class Attention4DImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kKeyDim = 32;
  static constexpr int64_t kNumHeads = 8;
  static constexpr int64_t kAttnRatio = 4;

  Attention4DImpl(int64_t channels, int64_t resolution, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  // The bias added to the attention logits for `queries` x `keys` positions:
  // 1 x heads x queries x keys.
  torch::Tensor Bias(int64_t queries, int64_t keys) const;
  // The side of the grid the bias table was built for.
  int64_t bias_resolution() const { return bias_resolution_; }

 private:
  int64_t stride_;
  int64_t bias_resolution_;
  torch::Tensor attention_biases_seg_;
  torch::Tensor attention_bias_idxs_seg_;
  torch::nn::Sequential stride_conv_{nullptr};  // Null without a stride.
  torch::nn::Sequential q_{nullptr};
  torch::nn::Sequential k_{nullptr};
  torch::nn::Sequential v_{nullptr};
  torch::nn::Sequential v_local_{nullptr};
  torch::nn::Conv2d talking_head1_{nullptr};
  torch::nn::Conv2d talking_head2_{nullptr};
  torch::nn::Sequential proj_{nullptr};
};
TORCH_MODULE(Attention4D);

// "AttnFFN": x + layer_scale_1 * token_mixer(x), then
// x + layer_scale_2 * mlp(x).
class AttnFfnImpl : public torch::nn::Module {
 public:
  AttnFfnImpl(int64_t channels, int64_t hidden_channels, int64_t resolution,
              int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor layer_scale_1_;
  torch::Tensor layer_scale_2_;
  Attention4D token_mixer_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(AttnFfn);

// "LGQuery": proj(local(x) + x[:, :, ::2, ::2]), local = depthwise 3x3/2
// conv, proj = conv1x1 + BN.
class LocalGlobalQueryImpl : public torch::nn::Module {
 public:
  LocalGlobalQueryImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Sequential local_{nullptr};
  torch::nn::Sequential proj_{nullptr};
};
TORCH_MODULE(LocalGlobalQuery);

// Attention4DDownsample: stride-2 attention from out_channels queries (the
// local-global query of a resolution/2 grid) to all input positions, key_dim
// 16, 8 heads, value dim 64 per head, no talking heads, plus a depthwise
// 3x3/2 v_local branch; GELU + conv1x1 + BN projection to out_channels.
// Inputs must have even sides.
class Attention4DDownsampleImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kKeyDim = 16;
  static constexpr int64_t kNumHeads = 8;
  static constexpr int64_t kAttnRatio = 4;

  Attention4DDownsampleImpl(int64_t in_channels, int64_t out_channels,
                            int64_t resolution);
  torch::Tensor forward(const torch::Tensor& x);

  // As Attention4D::Bias.
  torch::Tensor Bias(int64_t queries, int64_t keys) const;
  // The key grid side the bias table was built for (queries: half of it).
  int64_t bias_resolution() const { return bias_resolution_; }

 private:
  int64_t bias_resolution_;
  torch::Tensor attention_biases_seg_;
  torch::Tensor attention_bias_idxs_seg_;
  LocalGlobalQuery q_{nullptr};
  torch::nn::Sequential k_{nullptr};
  torch::nn::Sequential v_{nullptr};
  torch::nn::Sequential v_local_{nullptr};
  torch::nn::Sequential proj_{nullptr};
};
TORCH_MODULE(Attention4DDownsample);

// "Embedding" between stages: proj (conv3x3/2) + norm (BN); with `attention`
// (the "asub" embedding) instead attn(x) + bn(conv(x)), attn an
// Attention4DDownsample.
class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t in_channels, int64_t out_channels, bool attention,
                int64_t resolution);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d proj_{nullptr};
  torch::nn::BatchNorm2d norm_{nullptr};
  Attention4DDownsample attn_{nullptr};
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(Embedding);

}  // namespace efficientformer_v2

// The backbone. Construction initializes as the official code does where it
// differs from PyTorch's defaults (MLP 1x1 convs truncated-normal std 0.02
// with zero bias, layer scales 1e-5, zero attention biases), so a fixed
// torch::manual_seed gives fixed weights. As in the official model, train()
// leaves every BatchNorm in eval mode; drop path is not implemented, so the
// forward is the official eval-mode forward in either mode. forward()
// leaves the module unchanged, so concurrent forward calls on one instance
// are safe.
class EfficientFormerV2Impl : public torch::nn::Module {
 public:
  explicit EfficientFormerV2Impl(EfficientFormerV2Variant variant);

  // x: N x 3 x H x W with H and W positive multiples of 32 (anything else
  // throws c10::Error). Returns the features after each of the 4 stages, at
  // strides 4, 8, 16, 32, with out_channels() channels. The official
  // fork_feat forward adds no output norms (the checkpoints have none).
  std::vector<torch::Tensor> forward(torch::Tensor x);

  // Channels of those 4 features.
  const std::vector<int64_t>& out_channels() const { return out_channels_; }

  // Training mode keeps every BatchNorm's statistics frozen by default, as
  // the official model does for its ImageNet-initialised weights. From
  // scratch they must update: frozen at mean 0 and variance 1, nothing
  // normalizes and the activations grow without bound.
  void set_frozen_batch_norm(bool frozen);

  void train(bool on = true) override;

 private:
  bool frozen_batch_norm_ = true;
  std::vector<int64_t> out_channels_;
  torch::nn::Sequential patch_embed_{nullptr};
  torch::nn::ModuleList network_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  std::vector<efficientformer_v2::Embedding> embeddings_;
};
TORCH_MODULE(EfficientFormerV2);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_EFFICIENTFORMER_V2_H_
