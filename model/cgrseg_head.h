// The CGRSeg decode head (Ni et al., "Context-Guided Spatial Feature
// Reconstruction for Efficient Semantic Segmentation") as LibTorch C++
// frontend modules.
//
// Module and parameter names reproduce the official mmsegmentation head
// (github.com/nizhenliang/CGRSeg, mmseg/models/decode_heads/cgr_head.py,
// rcm.py, dpg_head.py; class CGRSeg), so the `decode_head.` part of an
// official checkpoint loads by name. With the SSA classifier the head is the
// official CGRSeg_ssa (github.com/xwmaxwma/SSA,
// models/decode_heads/cgr_head_ssa.py): no `lgc`, the SSA modules of
// model/ssa_head.h instead.
//
// Forward (eval mode; BatchNorm and LayerNorm eps 1e-5, exact GELU, bilinear
// resizes with align_corners=false), on the backbone's features at strides
// 8, 16, 32 (in_index 1, 2, 3 of the four):
//   ppa          adaptive average pooling of the three to the 1/64 size
//                (ceil of half the 1/32 size), concatenated.
//   trans        `neck_depth` RCMs over the concatenation; split back into
//                the three levels' "global semantics".
//   top-down     from 1/32 to 1/8: local = feature (+ conv[i] of the
//                upsampled previous result below 1/32), meta[i] = an RCM on
//                it, SIM[i] = fuse1(local) * upsample(h_sigmoid(fuse2(
//                global))) with `channels` outputs.
//   linear_fuse  depthwise 1x1 conv + BN + ReLU of the 1/8 result, then
//                conv_seg (the classifier shared with the final prediction)
//                gives coarse logits.
//   DPG          class prototypes = the 1/8 result gathered by the softmax
//                over positions of the coarse logits; lgc (Dynamic Prototype
//                Guided context block) pools them by attention into a
//                channel gate: out = x * sigmoid(mlp(pool)) + x; conv_seg
//                again gives the logits.
//   SSA          instead of DPG: model/ssa_head.h on the coarse logits and
//                the linear_fuse output.
// The head returns logits at 1/8 of the input.
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_CGRSEG_HEAD_H_
#define SEGSERVE_MODEL_CGRSEG_HEAD_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "model/ssa_head.h"

namespace segserve {

// The head's final classifier: DPG (the CGRSeg paper's) or SSA.
enum class CgrSegClassifier { kDpg, kSsa };

// The widths of one CGRSeg variant (the official configs' decode_head).
struct CgrSegHeadConfig {
  std::vector<int64_t> in_channels;    // Of the 1/8, 1/16, 1/32 features.
  int64_t channels = 128;              // Width of the reconstruction.
  int64_t band_kernel_size = 11;       // dw_size: the meta RCMs' 1xk / kx1.
  int64_t neck_band_kernel_size = 11;  // neck_size: the trans RCMs'.
  int64_t neck_depth = 5;              // next_repeat.
  int64_t square_kernel_size = 3;
  int64_t mlp_ratio = 2;
  int64_t num_classes = 150;
  CgrSegClassifier classifier = CgrSegClassifier::kDpg;
};

namespace cgrseg {

// "RCA", the rectangular self-calibration attention:
//   dwconv_hw(x) * sigmoid(excite(mean_w(x) + mean_h(x)))
// with dwconv_hw a square depthwise conv (bias) and excite = 1xk depthwise
// conv, BN, ReLU, kx1 depthwise conv (the "shape self-calibration").
class RectangularCalibrationImpl : public torch::nn::Module {
 public:
  RectangularCalibrationImpl(int64_t channels, int64_t band_kernel_size,
                             int64_t square_kernel_size);
  torch::Tensor forward(const torch::Tensor& x);

  // Switches forward() to a faster equivalent for eval mode: the excite BN
  // folded into the 1xk conv, the output multiplied by `output_scale` (per
  // channel, folded into dwconv_hw), and the band convs computed by shifted
  // multiply-adds, the 1xk one on the rank-2 axial map (row means plus
  // column means) without expanding it first. Registered tensors are left
  // as they are.
  void PrepareForInference(const torch::Tensor& output_scale);

 private:
  torch::Tensor FastForward(const torch::Tensor& x);

  int64_t padding_;
  torch::nn::Conv2d dwconv_hw_{nullptr};
  // Kept as the official Sequential for the key names (excite.0/1/3); the
  // forward calls its members directly.
  torch::nn::Sequential excite_{nullptr};
  torch::nn::Conv2d band_w_{nullptr};  // excite.0, 1 x k.
  torch::nn::BatchNorm2d band_bn_{nullptr};
  torch::nn::Conv2d band_h_{nullptr};  // excite.3, k x 1.
  // PrepareForInference's folded copies; undefined until then.
  torch::Tensor square_weight_, square_bias_;
  torch::Tensor band_w_weight_, band_w_bias_;  // C x k, C.
  torch::Tensor band_h_weight_, band_h_bias_;  // C x k, C.
};
TORCH_MODULE(RectangularCalibration);

// timm's ConvMlp as used by RCM: fc1 (1x1), GELU, fc2 (1x1).
class ConvMlpImpl : public torch::nn::Module {
 public:
  ConvMlpImpl(int64_t channels, int64_t hidden_channels);
  torch::Tensor forward(const torch::Tensor& x);

  // Makes forward() compute mlp(x + input_shift) (input_shift per channel)
  // by folding the shift into fc1's bias.
  void PrepareForInference(const torch::Tensor& input_shift);

 private:
  torch::nn::Conv2d fc1_{nullptr};
  torch::nn::Conv2d fc2_{nullptr};
  torch::Tensor fc1_bias_;  // fc1's bias as forward() uses it.
};
TORCH_MODULE(ConvMlp);

// RCM, the rectangular self-calibration module (a MetaNeXt block):
//   x + gamma * mlp(norm(token_mixer(x))), norm a BatchNorm.
class RcmImpl : public torch::nn::Module {
 public:
  RcmImpl(int64_t channels, int64_t band_kernel_size,
          int64_t square_kernel_size, int64_t mlp_ratio);
  torch::Tensor forward(const torch::Tensor& x);

  // Eval mode only: folds `norm` into the token mixer (its scale) and
  // fc1 (its shift), and the mixer's own BN into its 1xk conv; forward()
  // then skips both BNs.
  void PrepareForInference();

 private:
  bool prepared_ = false;
  torch::Tensor gamma_;  // Layer scale, one per channel.
  RectangularCalibration token_mixer_{nullptr};
  torch::nn::BatchNorm2d norm_{nullptr};
  ConvMlp mlp_{nullptr};
};
TORCH_MODULE(Rcm);

// mmcv's ConvModule with a 1x1 conv (no bias), BN and optionally ReLU.
class ConvBnImpl : public torch::nn::Module {
 public:
  ConvBnImpl(int64_t in_channels, int64_t out_channels, int64_t groups,
             bool relu);
  torch::Tensor forward(const torch::Tensor& x);

  // Eval mode only: folds the BN into the conv; forward() then runs one
  // conv with bias (a per-channel multiply-add when depthwise).
  void PrepareForInference();

 private:
  bool relu_;
  bool depthwise_;
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  torch::Tensor folded_weight_, folded_bias_;  // Undefined until prepared.
};
TORCH_MODULE(ConvBn);

// SIM ("FuseBlockMulti"): fuse1(local) * resize(h_sigmoid(fuse2(global)))
// to the local size; fuse1/fuse2 are 1x1 ConvBn without activation.
class FuseBlockImpl : public torch::nn::Module {
 public:
  FuseBlockImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& local,
                        const torch::Tensor& global);

  void PrepareForInference();

 private:
  ConvBn fuse1_{nullptr};
  ConvBn fuse2_{nullptr};
};
TORCH_MODULE(FuseBlock);

// "DPGHead" with pool 'att' and fusion 'channel_mul' (the `lgc` block):
// given prototypes p (N x C x K x 1), context = sum_k softmax_k(conv_mask(p))
// p_k, and the output is x * sigmoid(channel_mul_conv(context)), where
// channel_mul_conv = conv1x1, LayerNorm([C, 1, 1]), ReLU, conv1x1.
class DpgBlockImpl : public torch::nn::Module {
 public:
  explicit DpgBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& prototypes);

 private:
  torch::nn::Conv2d conv_mask_{nullptr};
  torch::nn::Sequential channel_mul_conv_{nullptr};
};
TORCH_MODULE(DpgBlock);

// "NextLayer": `depth` RCMs in sequence, held as transformer_blocks.
class NeckImpl : public torch::nn::Module {
 public:
  NeckImpl(int64_t depth, int64_t channels, int64_t band_kernel_size,
           int64_t square_kernel_size, int64_t mlp_ratio);
  torch::Tensor forward(torch::Tensor x);

  void PrepareForInference();

 private:
  torch::nn::ModuleList transformer_blocks_{nullptr};
  std::vector<Rcm> blocks_;
};
TORCH_MODULE(Neck);

// Adaptive average pooling of each feature to the 1/64 size (from the last,
// coarsest one: (size - 1) / 2 + 1 per side), concatenated on channels.
torch::Tensor PyramidPool(const std::vector<torch::Tensor>& features);

// OCR's SpatialGatherModule with scale 1: class prototypes
// softmax_hw(logits) @ features, returned as N x C x K x 1.
torch::Tensor GatherPrototypes(const torch::Tensor& features,
                               const torch::Tensor& logits);

// relu6(x + 3) / 6.
torch::Tensor HardSigmoid(const torch::Tensor& x);

}  // namespace cgrseg

// The whole head. In eval mode forward() leaves the module unchanged, so
// concurrent forward calls on one instance are safe.
class CgrSegHeadImpl : public torch::nn::Module {
 public:
  explicit CgrSegHeadImpl(const CgrSegHeadConfig& config);

  // features: the backbone's four outputs (strides 4, 8, 16, 32; the first
  // is unused, as in_index is 1, 2, 3) with config.in_channels channels at
  // strides 8..32. Returns N x num_classes logits at the 1/8 size.
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  // forward() that also stores Reconstruct()'s result in `*reconstruction`
  // (when not null): the decoder features that distillation compares.
  torch::Tensor ForwardWithFeatures(const std::vector<torch::Tensor>& features,
                                    torch::Tensor* reconstruction);

  // SSA only (throws for DPG): forward() with the SSA classifier's
  // training outputs; `labels` (N x H x W int64, any size) are resized to
  // the head's 1/8 grid by nearest neighbour, as the official forward_train.
  SsaTrainingOutputs ForwardForSsaTraining(
      const std::vector<torch::Tensor>& features, const torch::Tensor& labels);

  // The first part of forward(): the 1/8 reconstruction with `channels`
  // channels ("results[-1]" of the official forward). For tests and
  // analysis.
  torch::Tensor Reconstruct(const std::vector<torch::Tensor>& features);

  // Rewrites the head for faster inference with the same outputs (within
  // float rounding): every BatchNorm folded into a neighbouring conv, the
  // RCMs' band convs computed by shifted multiply-adds. Needs eval mode and
  // the final weights (load first: registered tensors are not changed, the
  // folded copies are not updated by later loads). Call at most once; the
  // head is for inference only afterwards (the folded path has no autograd
  // and ignores train()).
  void PrepareForInference();

  const CgrSegHeadConfig& config() const { return config_; }

 private:
  CgrSegHeadConfig config_;
  torch::nn::Conv2d conv_seg_{nullptr};
  cgrseg::ConvBn linear_fuse_{nullptr};
  cgrseg::Neck trans_{nullptr};
  torch::nn::ModuleList sim_{nullptr};
  torch::nn::ModuleList meta_{nullptr};
  torch::nn::ModuleList conv_{nullptr};
  std::vector<cgrseg::FuseBlock> sim_blocks_;
  std::vector<cgrseg::Rcm> meta_blocks_;
  std::vector<torch::nn::Conv2d> lateral_convs_;
  cgrseg::DpgBlock lgc_{nullptr};       // DPG only.
  std::unique_ptr<SsaClassifier> ssa_;  // SSA only.
};
TORCH_MODULE(CgrSegHead);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_CGRSEG_HEAD_H_
