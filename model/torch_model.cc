#include "model/torch_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/architectures.h"
#include "model/checkpoint.h"
#include "model/device_normalize.h"
#include "model/preprocess.h"
#include "model/torchscript_optimizer.h"
#include "model/upsampled_argmax.h"
#include "opencv2/core.hpp"

namespace segserve {
namespace {

namespace F = torch::nn::functional;

// Labels are 16-bit above 256 classes; more than 65536 cannot be encoded.

// The seed of the random input on which a builtin network's inference
// rewrite is checked at load.
constexpr uint64_t kRewriteProbeSeed = 20261207;

absl::StatusOr<torch::Device> ParseDevice(const std::string& name) {
  const absl::Status bad = absl::InvalidArgumentError(absl::StrCat(
      "device '", name, "' is not supported; allowed: cpu, cuda, cuda:N"));
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) != 0) return bad;
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    return bad;
  }
  const int count = CudaDeviceCount();
  if (count == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", name,
        "' requested but no CUDA device is available to this LibTorch build"));
  }
  const int index = device.has_index() ? device.index() : 0;
  if (index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", name, "' does not exist; ", count,
                     " CUDA device(s): cuda:0..cuda:", count - 1));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::ScalarType ScalarTypeOf(TorchModelOptions::Precision precision) {
  switch (precision) {
    case TorchModelOptions::Precision::kFp16:
      return torch::kHalf;
    case TorchModelOptions::Precision::kBf16:
      return torch::kBFloat16;
    case TorchModelOptions::Precision::kFp32:
      break;
  }
  return torch::kFloat;
}

// Each image's labels (and confidence) straight from its float logits on the
// CPU (model/upsampled_argmax.h): the rows of the whole batch shared among
// the intra-op threads.
std::vector<InferenceOutput> UpsampledOutputs(const torch::Tensor& logits,
                                              int64_t height, int64_t width,
                                              bool confidence) {
  const int64_t n = logits.size(0);
  const bool wide = logits.size(1) > 256;
  std::vector<InferenceOutput> outputs(n);
  for (InferenceOutput& output : outputs) {
    output.labels = cv::Mat(static_cast<int>(height), static_cast<int>(width),
                            wide ? CV_16UC1 : CV_8UC1);
    if (confidence) {
      output.confidence =
          cv::Mat(static_cast<int>(height), static_cast<int>(width), CV_8UC1);
    }
  }
  const float* data = logits.data_ptr<float>();
  at::parallel_for(
      0, n * height, /*grain_size=*/16, [&](int64_t begin, int64_t end) {
        while (begin < end) {
          const int64_t i = begin / height;
          const int64_t stop = std::min(end, (i + 1) * height);
          const LogitsPlane plane{.data = data + i * logits.stride(0),
                                  .classes = logits.size(1),
                                  .height = logits.size(2),
                                  .width = logits.size(3),
                                  .class_stride = logits.stride(1),
                                  .row_stride = logits.stride(2),
                                  .column_stride = logits.stride(3)};
          const UpsampledMask mask{
              .labels = outputs[i].labels.data,
              .wide_labels = wide,
              .confidence = confidence ? outputs[i].confidence.data : nullptr,
              .height = height,
              .width = width};
          UpsampledArgmaxRows(plane, mask, begin - i * height,
                              stop - i * height);
          begin = stop;
        }
      });
  return outputs;
}

// Moves tensors to the device and floating ones to `dtype`; integer buffers
// (num_batches_tracked) keep their type.
void MoveTensors(const std::vector<torch::Tensor>& tensors,
                 torch::Device device, torch::ScalarType dtype) {
  for (torch::Tensor tensor : tensors) {
    const bool convert =
        tensor.is_floating_point() && tensor.scalar_type() != dtype;
    if (tensor.device() == device && !convert) continue;
    tensor.set_data(convert ? tensor.to(device, dtype) : tensor.to(device));
  }
}

// Shared by builtin and TorchScript models: batching, normalization, device
// transfer, resizing and labelling. On CUDA each instance runs on a stream
// of its own (instances of one GPU overlap), assembles its batches as bytes
// in a pinned host buffer it reuses (the transfer to the device is
// asynchronous and a quarter of float32's size), normalizes them there, and
// copies each kind of output back in one transfer per batch.
class TorchModel : public SegmentationModel {
 public:
  TorchModel(const TorchModelOptions& options, torch::Device device,
             int64_t parameter_count)
      : options_(options),
        device_(device),
        dtype_(ScalarTypeOf(options.precision)),
        parameter_count_(parameter_count) {}

  absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const ModelInput> inputs, OutputKinds kinds) override;

  std::string device() const override { return device_.str(); }
  int64_t parameter_count() const override { return parameter_count_; }

 protected:
  // N x C x h x w logits of an N x 3 x H x W batch already on the device in
  // the model's dtype. May throw.
  virtual absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& batch) = 0;
  // Whether Forward's first step turns the batch channels-last: the CPU
  // then normalizes into that layout directly.
  virtual bool TakesChannelsLast() const = 0;

 private:
  // The batch as the network takes it: N x 3 x H x W normalized, on the
  // device, in the model's dtype. May throw.
  torch::Tensor InputBatch(absl::Span<const ModelInput> inputs);
  // CUDA: the bytes go over, then are normalized on the device.
  torch::Tensor NormalizeOnDevice(absl::Span<const ModelInput> inputs);

  const TorchModelOptions options_;
  const torch::Device device_;
  const torch::ScalarType dtype_;
  const int64_t parameter_count_;
  // CUDA only, made by the first batch. The pinned buffer is free again
  // when Infer returns: its last step, the copy back, waits for the stream.
  std::optional<c10::Stream> stream_;
  torch::Tensor pinned_inputs_;
  NormalizeFactors factors_;  // On the device.
};

torch::Tensor TorchModel::InputBatch(absl::Span<const ModelInput> inputs) {
  if (device_.is_cuda()) return NormalizeOnDevice(inputs);
  const int64_t n = static_cast<int64_t>(inputs.size());
  const int height = options_.input_height;
  const int width = options_.input_width;
  const bool channels_last = TakesChannelsLast();
  torch::Tensor batch = torch::empty(
      {n, 3, height, width},
      torch::TensorOptions()
          .dtype(torch::kFloat)
          .memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                       : at::MemoryFormat::Contiguous));
  float* data = batch.data_ptr<float>();
  const size_t image_floats = 3 * size_t(height) * width;
  // The batch's rows shared among the intra-op threads: on one thread this
  // pass would leave the other cores idle between the model's ops.
  at::parallel_for(
      0, n * height, /*grain_size=*/32, [&](int64_t begin, int64_t end) {
        while (begin < end) {
          const int64_t i = begin / height;
          const int64_t stop = std::min(end, (i + 1) * height);
          NormalizeRows(inputs[i].rgb, inputs[i].region, width, height,
                        options_.mean, options_.std, data + i * image_floats,
                        int(begin - i * height), int(stop - i * height),
                        channels_last ? FloatLayout::kHwc : FloatLayout::kChw);
          begin = stop;
        }
      });
  return batch;
}

torch::Tensor TorchModel::NormalizeOnDevice(
    absl::Span<const ModelInput> inputs) {
  const int64_t n = static_cast<int64_t>(inputs.size());
  const int64_t height = options_.input_height;
  const int64_t width = options_.input_width;
  if (!pinned_inputs_.defined() || pinned_inputs_.size(0) < n) {
    pinned_inputs_ = torch::empty(
        {std::max<int64_t>(n, options_.max_batch_size), height, width, 3},
        torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
  }
  if (!factors_.scale.defined()) {
    factors_ = MakeNormalizeFactors(options_.mean, options_.std, device_);
  }
  const torch::Tensor staged = pinned_inputs_.narrow(0, 0, n);
  const size_t image_bytes = size_t(height) * width * 3;
  uint8_t* data = staged.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(data + i * image_bytes, inputs[i].rgb, image_bytes);
  }
  return NormalizeBytes(staged.to(device_, /*non_blocking=*/true), inputs,
                        factors_)
      .to(dtype_);
}

absl::StatusOr<std::vector<InferenceOutput>> TorchModel::Infer(
    absl::Span<const ModelInput> inputs, OutputKinds kinds) {
  if (inputs.empty()) return absl::InvalidArgumentError("empty batch");
  for (const ModelInput& input : inputs) {
    if (input.rgb == nullptr) return absl::InvalidArgumentError("null input");
    const ContentRegion& region = input.region;
    if (region.x < 0 || region.y < 0 || region.width < 1 || region.height < 1 ||
        region.x + region.width > options_.input_width ||
        region.y + region.height > options_.input_height) {
      return absl::InvalidArgumentError(absl::StrCat(
          "content region ", region.width, "x", region.height, " at (",
          region.x, ", ", region.y, ") does not fit the ", options_.input_width,
          "x", options_.input_height, " input"));
    }
  }
  const int64_t n = static_cast<int64_t>(inputs.size());
  const int64_t height = options_.input_height;
  const int64_t width = options_.input_width;
  try {
    c10::InferenceMode inference_mode;
    std::optional<c10::StreamGuard> on_stream;
    if (device_.is_cuda()) {
      if (!stream_) {
        stream_ = c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA)
                      .getStreamFromGlobalPool(device_);
      }
      on_stream.emplace(*stream_);
    }
    SEGSERVE_ASSIGN_OR_RETURN(torch::Tensor logits,
                              Forward(InputBatch(inputs)));
    if (logits.dim() != 4 || logits.size(0) != n) {
      return absl::InternalError(absl::StrCat(
          "the model returned logits of shape ", c10::str(logits.sizes()),
          "; expected ", n, " x classes x height x width"));
    }
    const int64_t classes = logits.size(1);
    if (options_.num_classes > 0 && classes != options_.num_classes) {
      return absl::InternalError(absl::StrCat("the model produced ", classes,
                                              " classes, configured for ",
                                              options_.num_classes));
    }
    if (classes < 1 || classes > kMaxClasses) {
      return absl::InternalError(absl::StrCat("the model produced ", classes,
                                              " classes; 1..", kMaxClasses,
                                              " are supported"));
    }
    // Resizing and softmax in FP32 whatever the model's precision.
    logits = logits.to(torch::kFloat);
    if (options_.fused_mask_upsampling && logits.device().is_cpu() &&
        !kinds.logits) {
      return UpsampledOutputs(logits, height, width, kinds.confidence);
    }
    if (logits.size(2) != height || logits.size(3) != width) {
      logits =
          F::interpolate(logits, F::InterpolateFuncOptions()
                                     .size(std::vector<int64_t>{height, width})
                                     .mode(torch::kBilinear)
                                     .align_corners(false));
    }
    auto [max_logit, index] = logits.max(/*dim=*/1);
    const bool wide = classes > 256;
    const torch::Tensor labels = index.to(wide ? torch::kInt16 : torch::kUInt8);
    torch::Tensor confidence;
    if (kinds.confidence) {
      // The winning softmax probability: 1 / sum_c exp(l_c - max_c l_c).
      const torch::Tensor total =
          (logits - max_logit.unsqueeze(1)).exp_().sum(/*dim=*/1);
      confidence = total.reciprocal_().mul_(255).round_().clamp_(0, 255).to(
          torch::kUInt8);
    }
    // One transfer per kind of output (none on the CPU), then each image's
    // share into its own Mat.
    const torch::Tensor host_labels = labels.to(torch::kCPU).contiguous();
    const torch::Tensor host_confidence =
        kinds.confidence ? confidence.to(torch::kCPU).contiguous()
                         : torch::Tensor();
    const torch::Tensor host_logits =
        kinds.logits ? logits.to(torch::kCPU).contiguous() : torch::Tensor();
    const auto copy_image = [](const torch::Tensor& from, int64_t i,
                               cv::Mat& to) {
      std::memcpy(to.data, from[i].data_ptr(), to.total() * to.elemSize());
    };
    std::vector<InferenceOutput> outputs(inputs.size());
    for (int64_t i = 0; i < n; ++i) {
      InferenceOutput& output = outputs[i];
      output.labels = cv::Mat(static_cast<int>(height), static_cast<int>(width),
                              wide ? CV_16UC1 : CV_8UC1);
      copy_image(host_labels, i, output.labels);
      if (kinds.confidence) {
        output.confidence =
            cv::Mat(static_cast<int>(height), static_cast<int>(width), CV_8UC1);
        copy_image(host_confidence, i, output.confidence);
      }
      if (kinds.logits) {
        const int sizes[] = {static_cast<int>(classes),
                             static_cast<int>(height), static_cast<int>(width)};
        output.logits = cv::Mat(3, sizes, CV_32F);
        copy_image(host_logits, i, output.logits);
      }
    }
    return outputs;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("inference failed: ", ExceptionMessage(e)));
  }
}

class BuiltinModel final : public TorchModel {
 public:
  // `prepared`: PrepareForInference ran on the network.
  BuiltinModel(const TorchModelOptions& options, torch::Device device,
               BuiltinNetwork network, bool prepared, int64_t parameter_count)
      : TorchModel(options, device, parameter_count),
        network_(std::move(network)),
        channels_last_(prepared && network_.prefers_channels_last) {}

 protected:
  absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& batch) override {
    return network_.forward(batch);
  }
  bool TakesChannelsLast() const override { return channels_last_; }

 private:
  BuiltinNetwork network_;
  const bool channels_last_;
};

class TorchScriptModel final : public TorchModel {
 public:
  TorchScriptModel(const TorchModelOptions& options, torch::Device device,
                   PreparedTorchScript prepared, int64_t parameter_count)
      : TorchModel(options, device, parameter_count),
        module_(std::move(prepared.module)),
        channels_last_input_(prepared.channels_last_input) {}

 protected:
  absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& batch) override {
    if (channels_last_input_) {
      return TorchScriptLogits(module_.forward(
          {batch.contiguous(torch::MemoryFormat::ChannelsLast)}));
    }
    return TorchScriptLogits(module_.forward({batch}));
  }
  bool TakesChannelsLast() const override { return channels_last_input_; }

 private:
  torch::jit::Module module_;
  const bool channels_last_input_;
};

TorchScriptOptimization OptimizationOf(
    TorchModelOptions::TorchScriptOptimization level) {
  using Option = TorchModelOptions::TorchScriptOptimization;
  switch (level) {
    case Option::kNone:
      return TorchScriptOptimization::kNone;
    case Option::kFreeze:
      return TorchScriptOptimization::kFreeze;
    case Option::kFreezeChannelsLast:
      return TorchScriptOptimization::kFreezeChannelsLast;
    case Option::kOptimizeForInference:
      return TorchScriptOptimization::kOptimizeForInference;
    case Option::kAuto:
      break;
  }
  return TorchScriptOptimization::kAuto;
}

int64_t CountParameters(const std::vector<torch::Tensor>& parameters) {
  int64_t count = 0;
  for (const torch::Tensor& parameter : parameters) count += parameter.numel();
  return count;
}

// A TorchScript archive's parameters and buffers by name, for builtin
// architectures given a scripted model as weights.
StateDict TorchScriptState(const std::string& path) {
  const torch::jit::Module module = torch::jit::load(path, torch::kCPU);
  StateDict state;
  for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
    state.emplace_back(parameter.name, parameter.value);
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    state.emplace_back(buffer.name, buffer.value);
  }
  return state;
}

absl::StatusOr<std::unique_ptr<SegmentationModel>> LoadBuiltin(
    const TorchModelOptions& options, torch::Device device,
    ModelFileFormat format) {
  SEGSERVE_ASSIGN_OR_RETURN(
      std::string architecture,
      BuiltinArchitectureName(
          options.architecture,
          options.classifier == TorchModelOptions::Classifier::kSsa));
  if (options.classifier == TorchModelOptions::Classifier::kDpg &&
      architecture != options.architecture) {
    return absl::InvalidArgumentError(absl::StrCat(
        "architecture '", options.architecture,
        "' has the SSA classifier; classifier DPG contradicts it"));
  }
  if (options.num_classes < 1 || options.num_classes > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_classes is ", options.num_classes, "; allowed: 1..", kMaxClasses));
  }
  const std::string& path = options.weights_path;
  StateDict state;
  if (format == ModelFileFormat::kStateDict) {
    SEGSERVE_ASSIGN_OR_RETURN(state, ReadStateDict(path));
  } else {
    try {
      state = TorchScriptState(path);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": cannot read TorchScript weights: ", ExceptionMessage(e)));
    }
  }
  // The network with its weights, in eval mode on its device.
  const auto build = [&]() -> absl::StatusOr<BuiltinNetwork> {
    SEGSERVE_ASSIGN_OR_RETURN(
        BuiltinNetwork network,
        CreateBuiltinNetwork(architecture, options.num_classes));
    torch::nn::Module& module = *network.module;
    SEGSERVE_RETURN_IF_ERROR(LoadStateDict(state, path, &module));
    module.eval();
    MoveTensors(module.parameters(), device, ScalarTypeOf(options.precision));
    MoveTensors(module.buffers(), device, ScalarTypeOf(options.precision));
    return network;
  };
  try {
    SEGSERVE_ASSIGN_OR_RETURN(BuiltinNetwork network, build());
    if (options.input_height % network.input_multiple != 0 ||
        options.input_width % network.input_multiple != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input size ", options.input_height, "x", options.input_width,
          " is not a multiple of ", network.input_multiple, ", which ",
          architecture, " needs"));
    }
    // The inference rewrite (after the move: the folded copies it makes are
    // not module tensors) must keep the logits of a seeded random input;
    // if it does not, the network serves as loaded.
    const torch::Tensor probe =
        torch::randn({1, 3, options.input_height, options.input_width},
                     at::detail::createCPUGenerator(kRewriteProbeSeed))
            .to(device, ScalarTypeOf(options.precision));
    const double tolerance =
        options.precision == TorchModelOptions::Precision::kFp32 ? 1e-4 : 1e-2;
    const absl::StatusOr<double> checked =
        PrepareCheckedForInference(network, probe, tolerance);
    if (!checked.ok()) {
      SEGSERVE_LOG(Warning) << path << ": " << checked.status().message()
                            << "; serving the network as loaded";
      SEGSERVE_ASSIGN_OR_RETURN(network, build());
    }
    const int64_t parameter_count =
        CountParameters(network.module->parameters());
    return std::make_unique<BuiltinModel>(options, device, std::move(network),
                                          checked.ok(), parameter_count);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(
        path, ": cannot build ", architecture, ": ", ExceptionMessage(e)));
  }
}

absl::StatusOr<std::unique_ptr<SegmentationModel>> LoadTorchScript(
    const TorchModelOptions& options, torch::Device device,
    ModelFileFormat format) {
  const std::string& path = options.weights_path;
  if (format != ModelFileFormat::kTorchScript) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": holds a state dict (torch.save), not a TorchScript module; use "
        "platform BUILTIN with its architecture, or export the model with "
        "torch.jit.script/trace and torch.jit.save"));
  }
  if (options.num_classes < 0 || options.num_classes > kMaxClasses) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes is ", options.num_classes,
                     "; allowed: 0 (any) or 1..", kMaxClasses));
  }
  torch::jit::Module module;
  std::vector<torch::Tensor> parameters;
  try {
    module = torch::jit::load(path, device);
    module.eval();
    std::vector<torch::Tensor> buffers;
    for (const torch::Tensor& parameter : module.parameters()) {
      parameters.push_back(parameter);
    }
    for (const torch::Tensor& buffer : module.buffers()) {
      buffers.push_back(buffer);
    }
    MoveTensors(parameters, device, ScalarTypeOf(options.precision));
    MoveTensors(buffers, device, ScalarTypeOf(options.precision));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": cannot load TorchScript module: ", ExceptionMessage(e)));
  }
  // Counted before freezing turns parameters into constants.
  const int64_t parameter_count = CountParameters(parameters);
  TorchScriptProbe probe;
  probe.device = device;
  probe.dtype = ScalarTypeOf(options.precision);
  probe.height = options.input_height;
  probe.width = options.input_width;
  probe.max_batch_size = std::max(1, options.max_batch_size);
  probe.num_classes = options.num_classes;
  absl::StatusOr<PreparedTorchScript> prepared = PrepareTorchScript(
      std::move(module), OptimizationOf(options.torchscript_optimization),
      probe);
  if (!prepared.ok()) {
    return absl::Status(prepared.status().code(),
                        absl::StrCat(path, ": ", prepared.status().message()));
  }
  SEGSERVE_LOG(Info) << path << " on " << device.str()
                     << ": TorchScript optimization " << prepared->summary;
  return std::make_unique<TorchScriptModel>(
      options, device, *std::move(prepared), parameter_count);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SegmentationModel>> LoadTorchModel(
    const TorchModelOptions& options) {
  if (options.input_height < 1 || options.input_width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("input size ", options.input_height, "x",
                     options.input_width, " is not positive"));
  }
  if (options.weights_path.empty()) {
    return absl::InvalidArgumentError("weights_path is empty");
  }
  SEGSERVE_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));
  if (options.precision != TorchModelOptions::Precision::kFp32 &&
      !device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("FP16 and BF16 precision need a CUDA device, not '",
                     options.device, "'; use FP32 on the CPU"));
  }
  SEGSERVE_ASSIGN_OR_RETURN(ModelFileFormat format,
                            DetectModelFileFormat(options.weights_path));
  switch (options.platform) {
    case TorchModelOptions::Platform::kBuiltin:
      return LoadBuiltin(options, device, format);
    case TorchModelOptions::Platform::kTorchScript:
      return LoadTorchScript(options, device, format);
  }
  return absl::InvalidArgumentError("unknown platform");
}

int CudaDeviceCount() {
  try {
    return torch::cuda::is_available()
               ? static_cast<int>(torch::cuda::device_count())
               : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace segserve
