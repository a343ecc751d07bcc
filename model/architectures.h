// The builtin architectures by name, for the loader (torch_model.cc), segtool
// and the benchmark:
//   sgcpnet                    SGCPNet (model/sgcpnet.h), 19 classes default
//   cgrseg_t, cgrseg_b, cgrseg_l          CGRSeg with the DPG head
//   cgrseg_t_ssa, cgrseg_b_ssa, cgrseg_l_ssa  CGRSeg with the SSA classifier
// (model/cgrseg.h), 150 classes default.
//
// Only model/*.cc, tools and tests include this header; it pulls in LibTorch.

#ifndef SEGSERVE_MODEL_ARCHITECTURES_H_
#define SEGSERVE_MODEL_ARCHITECTURES_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/ssa_training.h"

namespace segserve {

struct DecoderOutputs {
  torch::Tensor features;  // N x feature_channels x h x w.
  torch::Tensor logits;    // N x num_classes x h x w.
};

// A constructed network. `module` is the root whose state dict is the
// official checkpoint's; `forward` maps N x 3 x H x W normalized RGB to
// logits at 1/output_stride of the input.
struct BuiltinNetwork {
  std::string architecture;
  int64_t num_classes = 0;
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  // forward() that also returns the decoder's last feature map before the
  // classifier (at 1/output_stride; SGCPNet 64 channels, CGRSeg the head's
  // reconstruction width): what relation distillation compares.
  std::function<DecoderOutputs(const torch::Tensor&)> forward_with_features;
  int64_t feature_channels = 0;
  // The SSA classifier's training forward (CGRSeg with SSA; empty
  // otherwise): input and N x H x W int64 labels at the input size.
  std::function<SsaTrainingOutputs(const torch::Tensor&, const torch::Tensor&)>
      forward_ssa_training;
  // The feature extractor alone, for per-part figures (MACs); its
  // parameters are those whose names start with one of backbone_prefixes.
  std::function<void(const torch::Tensor&)> backbone_forward;
  std::vector<std::string> backbone_prefixes;
  // Sets whether the backbone's BatchNorm statistics stay frozen in training
  // mode (EfficientFormerV2; frozen by default, as the official recipe for
  // ImageNet-initialised weights). Empty where there is no such switch.
  std::function<void(bool)> freeze_backbone_norm;
  // PrepareForInference's architecture-specific part; may be empty.
  std::function<void()> prepare;
  // Whether PrepareForInference switches the network to channels-last
  // (NHWC) activations: faster where every layer keeps that layout.
  bool prefers_channels_last = false;
  int64_t output_stride = 8;
  // Input sides must be multiples of this (1: any size).
  int64_t input_multiple = 1;
};

// Every name above, sgcpnet first.
const std::vector<std::string>& BuiltinArchitectureNames();

// The class count of the official checkpoints (19 or 150); 0 when unknown.
int64_t DefaultNumClasses(const std::string& architecture);

// A config's architecture ("cgrseg_t") and classifier choice as one of the
// names above ("cgrseg_t_ssa" with ssa). INVALID_ARGUMENT for an unknown
// name, and for SSA on an architecture that has no CGRSeg head.
absl::StatusOr<std::string> BuiltinArchitectureName(
    const std::string& architecture, bool ssa);

// Builds the network with LibTorch's global RNG (torch::manual_seed fixes
// it), in training mode as LibTorch modules start. INVALID_ARGUMENT for an
// unknown name or a class count outside 1..65536.
absl::StatusOr<BuiltinNetwork> CreateBuiltinNetwork(
    const std::string& architecture, int64_t num_classes);

// Rewrites an eval-mode network, once its weights are loaded and it sits on
// its device, for faster inference with the same outputs (within float
// rounding, 1e-5 relative in the tests). CGRSeg: the head's BatchNorms are
// folded into neighbouring convs and its band convs run as shifted
// multiply-adds (CgrSegHeadImpl::PrepareForInference). SGCPNet: conv
// weights and activations in channels-last layout, which oneDNN runs
// without reorders (forward() converts the input, and returns contiguous
// NCHW logits). The registered parameters and buffers keep their values,
// so the state dict is unchanged; the folded copies are not: load or move
// the module before, never after. Call at most once.
void PrepareForInference(BuiltinNetwork& network);

// PrepareForInference, checked: the network's logits on `probe` (an
// N x 3 x H x W batch on its device and in its dtype) before and after must
// agree within `tolerance` of their largest magnitude. Returns the
// difference found (relative to that magnitude), or FAILED_PRECONDITION
// naming it; the network is prepared either way, so a caller that will not
// serve a failed rewrite must build the network again.
absl::StatusOr<double> PrepareCheckedForInference(BuiltinNetwork& network,
                                                  const torch::Tensor& probe,
                                                  double tolerance);

// Switches the network's conv weights and inputs to channels-last (NHWC);
// its outputs keep the layout the last op gives them. PrepareForInference
// does this for networks that prefer it; the trainer too.
void UseChannelsLast(BuiltinNetwork& network);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_ARCHITECTURES_H_
