#include "model/architectures.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "model/cgrseg.h"
#include "model/checkpoint.h"
#include "model/sgcpnet.h"

namespace segserve {
namespace {

constexpr char kSsaSuffix[] = "_ssa";

struct CgrSegName {
  const char* name;
  CgrSegVariant variant;
  CgrSegClassifier classifier;
};

constexpr CgrSegName kCgrSegNames[] = {
    {"cgrseg_t", CgrSegVariant::kT, CgrSegClassifier::kDpg},
    {"cgrseg_b", CgrSegVariant::kB, CgrSegClassifier::kDpg},
    {"cgrseg_l", CgrSegVariant::kL, CgrSegClassifier::kDpg},
    {"cgrseg_t_ssa", CgrSegVariant::kT, CgrSegClassifier::kSsa},
    {"cgrseg_b_ssa", CgrSegVariant::kB, CgrSegClassifier::kSsa},
    {"cgrseg_l_ssa", CgrSegVariant::kL, CgrSegClassifier::kSsa},
};

const CgrSegName* FindCgrSeg(const std::string& name) {
  for (const CgrSegName& entry : kCgrSegNames) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

absl::Status UnknownArchitecture(const std::string& name) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown builtin architecture '", name,
      "'; allowed: ", absl::StrJoin(BuiltinArchitectureNames(), ", ")));
}

BuiltinNetwork MakeSgcpNet(int64_t num_classes) {
  SgcpNet net(num_classes);
  BuiltinNetwork network;
  network.module = net.ptr();
  network.forward = [net](const torch::Tensor& x) mutable {
    return net->forward(x);
  };
  network.forward_with_features = [net](const torch::Tensor& x) mutable {
    DecoderOutputs outputs;
    outputs.features = net->Decode(x);
    outputs.logits = net->Classify(outputs.features);
    return outputs;
  };
  network.feature_channels = SgcpNetImpl::kFeatureChannels;
  // SGCPNet's MobileNetV3-style feature layers; the rest is its head.
  network.backbone_prefixes = {"l1.", "l2.", "l3.", "l4.", "l5."};
  network.prepare = [net]() mutable { net->PrepareForInference(); };
  // Measured (BENCHMARKS.md): its 1x1 and depthwise convs run 2-3x faster
  // on NHWC.
  network.prefers_channels_last = true;
  network.output_stride = SgcpNetImpl::kOutputStride;
  network.input_multiple = 1;
  return network;
}

BuiltinNetwork MakeCgrSeg(const CgrSegName& entry, int64_t num_classes) {
  CgrSeg net(entry.variant, entry.classifier, num_classes);
  BuiltinNetwork network;
  network.module = net.ptr();
  network.forward = [net](const torch::Tensor& x) mutable {
    return net->forward(x);
  };
  network.forward_with_features = [net](const torch::Tensor& x) mutable {
    DecoderOutputs outputs;
    outputs.logits = net->ForwardWithFeatures(x, &outputs.features);
    return outputs;
  };
  network.feature_channels = net->decode_head()->config().channels;
  if (entry.classifier == CgrSegClassifier::kSsa) {
    network.forward_ssa_training = [net](const torch::Tensor& x,
                                         const torch::Tensor& labels) mutable {
      return net->ForwardForSsaTraining(x, labels);
    };
  }
  network.backbone_forward = [net](const torch::Tensor& x) mutable {
    net->backbone()->forward(x);
  };
  network.backbone_prefixes = {"backbone."};
  network.freeze_backbone_norm = [net](bool frozen) mutable {
    net->backbone()->set_frozen_batch_norm(frozen);
  };
  network.prepare = [net]() mutable {
    net->decode_head()->PrepareForInference();
  };
  network.output_stride = CgrSegImpl::kOutputStride;
  network.input_multiple = CgrSegImpl::kInputMultiple;
  return network;
}

}  // namespace

const std::vector<std::string>& BuiltinArchitectureNames() {
  static const auto* names = [] {
    auto* list = new std::vector<std::string>{"sgcpnet"};
    for (const CgrSegName& entry : kCgrSegNames) list->push_back(entry.name);
    return list;
  }();
  return *names;
}

int64_t DefaultNumClasses(const std::string& architecture) {
  if (architecture == "sgcpnet") return SgcpNetImpl::kDefaultNumClasses;
  if (FindCgrSeg(architecture) != nullptr) {
    return CgrSegImpl::kDefaultNumClasses;
  }
  return 0;
}

absl::StatusOr<std::string> BuiltinArchitectureName(
    const std::string& architecture, bool ssa) {
  if (architecture != "sgcpnet" && FindCgrSeg(architecture) == nullptr) {
    return UnknownArchitecture(architecture);
  }
  if (!ssa || absl::EndsWith(architecture, kSsaSuffix)) return architecture;
  const std::string with_ssa = absl::StrCat(architecture, kSsaSuffix);
  if (FindCgrSeg(with_ssa) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("classifier SSA applies to cgrseg_* architectures only, "
                     "not '",
                     architecture, "'"));
  }
  return with_ssa;
}

absl::StatusOr<BuiltinNetwork> CreateBuiltinNetwork(
    const std::string& architecture, int64_t num_classes) {
  const CgrSegName* cgrseg = FindCgrSeg(architecture);
  if (architecture != "sgcpnet" && cgrseg == nullptr) {
    return UnknownArchitecture(architecture);
  }
  if (num_classes < 1 || num_classes > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_classes is ", num_classes, "; allowed: 1..", kMaxClasses));
  }
  try {
    BuiltinNetwork network =
        cgrseg ? MakeCgrSeg(*cgrseg, num_classes) : MakeSgcpNet(num_classes);
    network.architecture = architecture;
    network.num_classes = num_classes;
    return network;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot build ", architecture, ": ", ExceptionMessage(e)));
  }
}

void UseChannelsLast(BuiltinNetwork& network) {
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& parameter : network.module->parameters()) {
      if (parameter.dim() == 4) {
        parameter.set_data(
            parameter.contiguous(at::MemoryFormat::ChannelsLast));
      }
    }
  }
  network.forward = [inner =
                         std::move(network.forward)](const torch::Tensor& x) {
    return inner(x.contiguous(at::MemoryFormat::ChannelsLast));
  };
  if (network.forward_with_features) {
    network.forward_with_features =
        [inner =
             std::move(network.forward_with_features)](const torch::Tensor& x) {
          return inner(x.contiguous(at::MemoryFormat::ChannelsLast));
        };
  }
  if (network.forward_ssa_training) {
    network.forward_ssa_training =
        [inner = std::move(network.forward_ssa_training)](
            const torch::Tensor& x, const torch::Tensor& labels) {
          return inner(x.contiguous(at::MemoryFormat::ChannelsLast), labels);
        };
  }
}

absl::StatusOr<double> PrepareCheckedForInference(BuiltinNetwork& network,
                                                  const torch::Tensor& probe,
                                                  double tolerance) {
  // Only the forward passes in InferenceMode: tensors the rewrite makes
  // (folded copies, channels-last parameters) stay normal tensors, as
  // PrepareForInference alone leaves them.
  const auto logits = [&] {
    c10::InferenceMode inference_mode;
    return network.forward(probe).to(torch::kFloat);
  };
  const torch::Tensor plain = logits();
  {
    torch::NoGradGuard no_grad;
    PrepareForInference(network);
  }
  const torch::Tensor prepared = logits();
  const double scale = std::max(plain.abs().max().item<double>(), 1e-12);
  const double difference =
      prepared.sizes() == plain.sizes()
          ? (prepared - plain).abs().max().item<double>() / scale
          : std::numeric_limits<double>::infinity();
  if (!(difference <= tolerance)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the inference rewrite of %s changes its logits by %.3g of their "
        "largest magnitude (allowed: %.3g)",
        network.architecture, difference, tolerance));
  }
  return difference;
}

void PrepareForInference(BuiltinNetwork& network) {
  if (network.prepare) network.prepare();
  if (!network.prefers_channels_last) return;
  UseChannelsLast(network);
  network.forward = [inner =
                         std::move(network.forward)](const torch::Tensor& x) {
    return inner(x).contiguous();
  };
}

}  // namespace segserve
