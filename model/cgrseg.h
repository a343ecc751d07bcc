// CGRSeg-T/B/L (Ni et al., "Context-Guided Spatial Feature Reconstruction for
// Efficient Semantic Segmentation"): an EfficientFormerV2 backbone and the
// CGRSeg decode head, as the official mmsegmentation EncoderDecoder.
//
// The module's children are `backbone` (EfficientFormerV2 S1/S2/L) and
// `decode_head` (model/cgrseg_head.h), so its state dict has exactly the keys
// of an official checkpoint (shared/model-keys/cgrseg_{t,b,l}.keys.txt, and
// cgrseg_t_ssa.keys.txt with the SSA classifier) and one loads strictly by
// name. The official variants (local_configs/cgrseg/cgrseg-{t,b,l}_*.py):
//
//   variant backbone in_channels     channels band neck depth  params (DPG)
//   T       S1       48, 120, 224    128      11   11   5      9,364,647
//   B       S2       64, 144, 288    256      11   11   6      19,114,871
//   L       L        80, 192, 384    256      9    9    5      35,677,703
//
// forward() returns the head's logits at 1/8 of the input; resizing them to
// the input (bilinear, align_corners=false, as mmseg's encode_decode) is the
// caller's job.
//
// Only model/*.cc and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_CGRSEG_H_
#define SEGSERVE_MODEL_CGRSEG_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

#include "model/cgrseg_head.h"
#include "model/efficientformer_v2.h"

namespace segserve {

enum class CgrSegVariant { kT, kB, kL };

// The official decode_head settings of a variant, with `num_classes`
// classes and the given classifier.
CgrSegHeadConfig CgrSegHeadConfigFor(CgrSegVariant variant,
                                     CgrSegClassifier classifier,
                                     int64_t num_classes);

EfficientFormerV2Variant CgrSegBackboneFor(CgrSegVariant variant);

// The whole network. Construction initializes like the official modules
// where they differ from LibTorch's defaults, so a fixed torch::manual_seed
// gives a fixed model. In eval mode forward() leaves the module unchanged,
// so concurrent forward calls on one instance are safe.
class CgrSegImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kDefaultNumClasses = 150;  // ADE20K.
  // The logits' resolution relative to the input.
  static constexpr int64_t kOutputStride = 8;
  // Inputs must have sides that are multiples of this.
  static constexpr int64_t kInputMultiple = 32;

  CgrSegImpl(CgrSegVariant variant, CgrSegClassifier classifier,
             int64_t num_classes = kDefaultNumClasses);

  // x: N x 3 x H x W normalized RGB, H and W positive multiples of 32
  // (anything else throws c10::Error). Returns N x num_classes x H/8 x W/8.
  torch::Tensor forward(const torch::Tensor& x);
  // forward() that also stores the head's 1/8 reconstruction (the decoder
  // features) in `*features`.
  torch::Tensor ForwardWithFeatures(const torch::Tensor& x,
                                    torch::Tensor* features);

  // SSA only: forward() with the classifier's training outputs
  // (CgrSegHeadImpl::ForwardForSsaTraining); labels N x H x W int64.
  SsaTrainingOutputs ForwardForSsaTraining(const torch::Tensor& x,
                                           const torch::Tensor& labels);

  EfficientFormerV2& backbone() { return backbone_; }
  CgrSegHead& decode_head() { return decode_head_; }

 private:
  EfficientFormerV2 backbone_{nullptr};
  CgrSegHead decode_head_{nullptr};
};
TORCH_MODULE(CgrSeg);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_CGRSEG_H_
