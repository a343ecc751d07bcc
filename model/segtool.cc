// segtool: the builtin models from the command line.
//
//   segtool keys --arch A [--num_classes N]
//       Prints every state-dict key as "key<TAB>(shape)<TAB>dtype", the
//       format of shared/model-keys/*.keys.txt.
//   segtool init --arch A --seed S [--num_classes N] --output model.pt
//       Writes a freshly initialized state dict (torch::manual_seed(S)), which
//       the BUILTIN loader and Python's torch.load both read.
//   segtool info --arch A [--num_classes N] [--weights model.pt]
//                [--height H --width W]
//       Prints the parameter counts (total, backbone, head) and the
//       multiply-accumulates of the conv and linear layers for one H x W
//       image (default 512 x 512); given weights, checks that they load
//       strictly.
//   segtool infer --arch A [--num_classes N] --weights W.pt --input X.pt
//                 --output Y.pt
//       X.pt: a torch.save'd dict whose "input" is N x 3 x H x W normalized
//       floats. Y.pt gets "output" (the logits at the head's resolution) and
//       "output_full" (those resized bilinearly, align_corners=false, to
//       H x W).
//   segtool half --weights W.pt --output H.pt
//       Writes W's state dict with every floating tensor as float16 (half
//       the size on disk; the loaders convert back to the model's dtype).
//       Refuses a value beyond float16's range. Prints the tensor with the
//       largest rounding error relative to its own largest magnitude.
//
// A is one of sgcpnet, cgrseg_t, cgrseg_b, cgrseg_l, cgrseg_t_ssa,
// cgrseg_b_ssa, cgrseg_l_ssa. --num_classes defaults to the official
// checkpoints' (19 for SGCPNet, 150 for CGRSeg).
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error.

#include <torch/nn/functional/upsampling.h>
#include <torch/utils.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "model/architectures.h"
#include "model/checkpoint.h"
#include "model/mac_counter.h"

namespace segserve {
namespace {

namespace F = torch::nn::functional;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int64_t kDefaultSide = 512;
constexpr int64_t kMaxSide = 8192;

constexpr char kUsage[] =
    "usage:\n"
    "  segtool keys --arch A [--num_classes N]\n"
    "  segtool init --arch A --seed S [--num_classes N] --output model.pt\n"
    "  segtool info --arch A [--num_classes N] [--weights model.pt] "
    "[--height H --width W]\n"
    "  segtool infer --arch A [--num_classes N] --weights W.pt --input X.pt "
    "--output Y.pt\n"
    "  segtool half --weights W.pt --output H.pt\n"
    "architectures A: sgcpnet, cgrseg_t, cgrseg_b, cgrseg_l, cgrseg_t_ssa, "
    "cgrseg_b_ssa, cgrseg_l_ssa\n";

int UsageError(const std::string& message) {
  std::fprintf(stderr, "segtool: %s\n%s", message.c_str(), kUsage);
  return kExitUsage;
}

int Failure(const std::string& message) {
  std::fprintf(stderr, "segtool: %s\n", message.c_str());
  return kExitFailure;
}

// "--flag value" and "--flag=value" pairs; false with a message on anything
// else or on a flag not in `allowed`.
bool ParseFlags(int argc, char** argv, const std::set<std::string>& allowed,
                std::map<std::string, std::string>* flags, std::string* error) {
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      *error = absl::StrCat("unexpected argument '", arg, "'");
      return false;
    }
    std::string name = arg.substr(2);
    std::string value;
    const size_t equals = name.find('=');
    if (equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = absl::StrCat("flag --", name, " needs a value");
      return false;
    }
    if (allowed.count(name) == 0) {
      *error = absl::StrCat("unknown flag --", name);
      return false;
    }
    (*flags)[name] = value;
  }
  return true;
}

std::string FlagOr(const std::map<std::string, std::string>& flags,
                   const std::string& name, const std::string& fallback) {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

struct Common {
  std::string arch;
  int64_t num_classes = 0;
};

// Reads --arch and --num_classes; false with a message when they are bad.
bool ParseCommon(const std::map<std::string, std::string>& flags,
                 Common* common, std::string* error) {
  auto arch = flags.find("arch");
  if (arch == flags.end()) {
    *error = "--arch is required";
    return false;
  }
  common->arch = arch->second;
  common->num_classes = DefaultNumClasses(common->arch);
  if (common->num_classes == 0) {
    *error = absl::StrCat(
        "unknown architecture '", arch->second,
        "'; allowed: ", absl::StrJoin(BuiltinArchitectureNames(), ", "));
    return false;
  }
  auto classes = flags.find("num_classes");
  if (classes != flags.end() &&
      (!absl::SimpleAtoi(classes->second, &common->num_classes) ||
       common->num_classes < 1 || common->num_classes > kMaxClasses)) {
    *error = absl::StrCat("--num_classes must be 1..", kMaxClasses, ", not '",
                          classes->second, "'");
    return false;
  }
  return true;
}

// Reads --height and --width (default 512 each); they must suit `multiple`
// only when the network needs it, which is checked later.
bool ParseSize(const std::map<std::string, std::string>& flags, int64_t* height,
               int64_t* width, std::string* error) {
  for (auto [name, side] :
       {std::pair<const char*, int64_t*>{"height", height}, {"width", width}}) {
    const std::string value = FlagOr(flags, name, absl::StrCat(kDefaultSide));
    if (!absl::SimpleAtoi(value, side) || *side < 1 || *side > kMaxSide) {
      *error = absl::StrCat("--", name, " must be 1..", kMaxSide, ", not '",
                            value, "'");
      return false;
    }
  }
  return true;
}

absl::StatusOr<BuiltinNetwork> Build(const Common& common) {
  return CreateBuiltinNetwork(common.arch, common.num_classes);
}

int Keys(const Common& common) {
  absl::StatusOr<BuiltinNetwork> network = Build(common);
  if (!network.ok()) return Failure(network.status().ToString());
  for (const auto& [name, tensor] : ModuleState(*network->module)) {
    std::printf("%s\n", DescribeTensor(name, tensor).c_str());
  }
  return 0;
}

int Init(const Common& common, uint64_t seed, const std::string& output) {
  torch::manual_seed(seed);
  absl::StatusOr<BuiltinNetwork> network = Build(common);
  if (!network.ok()) return Failure(network.status().ToString());
  const absl::Status saved =
      SaveStateDict(ModuleState(*network->module), output);
  if (!saved.ok()) return Failure(saved.ToString());
  std::printf("wrote %s: %s, %lld classes, seed %llu\n", output.c_str(),
              common.arch.c_str(), static_cast<long long>(common.num_classes),
              static_cast<unsigned long long>(seed));
  return 0;
}

std::string Giga(int64_t count) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f G", static_cast<double>(count) / 1e9);
  return text;
}

int Info(const Common& common, const std::string& weights, int64_t height,
         int64_t width) {
  absl::StatusOr<BuiltinNetwork> network = Build(common);
  if (!network.ok()) return Failure(network.status().ToString());
  if (height % network->input_multiple != 0 ||
      width % network->input_multiple != 0) {
    return Failure(absl::StrCat(common.arch,
                                " needs input sides that are "
                                "multiples of ",
                                network->input_multiple, ", not ", height,
                                " x ", width));
  }
  torch::nn::Module& module = *network->module;
  int64_t parameters = 0;
  int64_t backbone = 0;
  for (const auto& item : module.named_parameters()) {
    parameters += item.value().numel();
    for (const std::string& prefix : network->backbone_prefixes) {
      if (absl::StartsWith(item.key(), prefix)) {
        backbone += item.value().numel();
        break;
      }
    }
  }
  // Weights first: a bad file fails before the (slower) counting pass.
  if (!weights.empty()) {
    const absl::Status loaded = LoadStateDictFile(weights, &module);
    if (!loaded.ok()) return Failure(loaded.ToString());
  }
  module.eval();
  const torch::Tensor input = torch::zeros({1, 3, height, width});
  MacCount total;
  MacCount backbone_macs;
  {
    c10::InferenceMode inference_mode;
    {
      MacCounter counter;
      network->forward(input);
      total = counter.count();
    }
    if (network->backbone_forward) {
      MacCounter counter;
      network->backbone_forward(input);
      backbone_macs = counter.count();
    }
  }
  std::printf(
      "architecture: %s\nclasses: %lld\nparameters: %lld\n"
      "parameters (backbone): %lld\nparameters (head): %lld\n"
      "state-dict keys: %zu\noutput stride: %lld\n"
      "input: %lld x %lld\n"
      "MACs (conv + linear): %lld (%s)\n"
      "MACs (conv): %lld\nMACs (linear): %lld\n",
      common.arch.c_str(), static_cast<long long>(common.num_classes),
      static_cast<long long>(parameters), static_cast<long long>(backbone),
      static_cast<long long>(parameters - backbone), ModuleState(module).size(),
      static_cast<long long>(network->output_stride),
      static_cast<long long>(height), static_cast<long long>(width),
      static_cast<long long>(total.total()), Giga(total.total()).c_str(),
      static_cast<long long>(total.conv), static_cast<long long>(total.linear));
  if (network->backbone_forward) {
    std::printf("MACs (backbone): %lld\nMACs (head): %lld\n",
                static_cast<long long>(backbone_macs.total()),
                static_cast<long long>(total.total() - backbone_macs.total()));
  }
  if (!weights.empty()) {
    std::printf("weights: %s loads strictly\n", weights.c_str());
  }
  return 0;
}

int Infer(const Common& common, const std::string& weights,
          const std::string& input_path, const std::string& output_path) {
  absl::StatusOr<BuiltinNetwork> network = Build(common);
  if (!network.ok()) return Failure(network.status().ToString());
  torch::nn::Module& module = *network->module;
  const absl::Status loaded = LoadStateDictFile(weights, &module);
  if (!loaded.ok()) return Failure(loaded.ToString());
  module.eval();

  absl::StatusOr<StateDict> inputs = ReadStateDict(input_path);
  if (!inputs.ok()) return Failure(inputs.status().ToString());
  torch::Tensor input;
  for (const auto& [name, tensor] : *inputs) {
    if (name == "input") input = tensor;
  }
  if (!input.defined()) {
    return Failure(absl::StrCat(input_path, ": has no key \"input\""));
  }
  if (input.dim() != 4 || input.size(1) != 3 || !input.is_floating_point()) {
    return Failure(absl::StrCat(
        input_path, ": \"input\" is ", c10::str(input.sizes()), " ",
        c10::toString(input.scalar_type()), "; expected N x 3 x H x W floats"));
  }
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  if (height % network->input_multiple != 0 ||
      width % network->input_multiple != 0) {
    return Failure(absl::StrCat(
        input_path, ": ", common.arch, " needs sides that are multiples of ",
        network->input_multiple, ", not ", height, " x ", width));
  }
  torch::Tensor output;
  torch::Tensor full;
  {
    c10::InferenceMode inference_mode;
    output = network->forward(input.to(torch::kFloat).contiguous());
    full = F::interpolate(output, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{height, width})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));
  }
  const absl::Status saved =
      SaveStateDict({{"output", output}, {"output_full", full}}, output_path);
  if (!saved.ok()) return Failure(saved.ToString());
  std::printf("wrote %s: output %s, output_full %s\n", output_path.c_str(),
              c10::str(output.sizes()).c_str(), c10::str(full.sizes()).c_str());
  return 0;
}

int Half(const std::string& weights, const std::string& output) {
  absl::StatusOr<StateDict> state = ReadStateDict(weights);
  if (!state.ok()) return Failure(state.status().ToString());
  constexpr double kHalfMax = 65504;
  // The tensor that loses most, relative to its own largest magnitude:
  // large only for tensors of tiny values (float16's subnormals).
  double worst_relative_error = 0;
  std::string worst_name;
  double worst_largest = 0;
  int converted = 0;
  for (auto& [name, tensor] : *state) {
    if (!tensor.is_floating_point() || tensor.scalar_type() == torch::kHalf) {
      continue;
    }
    const double largest =
        tensor.numel() == 0 ? 0 : tensor.abs().max().item<double>();
    if (!(largest <= kHalfMax)) {
      return Failure(absl::StrCat(weights, ": ", name, " holds ", largest,
                                  ", beyond float16's range (", kHalfMax, ")"));
    }
    const torch::Tensor half = tensor.to(torch::kHalf);
    if (largest > 0) {
      const double error = (half.to(torch::kDouble) - tensor.to(torch::kDouble))
                               .abs()
                               .max()
                               .item<double>() /
                           largest;
      if (error > worst_relative_error) {
        worst_relative_error = error;
        worst_name = name;
        worst_largest = largest;
      }
    }
    tensor = half;
    ++converted;
  }
  const absl::Status saved = SaveStateDict(*state, output);
  if (!saved.ok()) return Failure(saved.ToString());
  std::printf("wrote %s: %d of %zu tensors as float16\n", output.c_str(),
              converted, state->size());
  if (!worst_name.empty()) {
    std::printf(
        "largest rounding error: %.3g of the largest magnitude of %s "
        "(%.3g)\n",
        worst_relative_error, worst_name.c_str(), worst_largest);
  }
  return 0;
}

int Run(int argc, char** argv) {
  if (argc < 2) return UsageError("missing command");
  const std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    std::printf("%s", kUsage);
    return 0;
  }
  std::set<std::string> allowed = {"arch", "num_classes"};
  if (command == "half") {
    std::map<std::string, std::string> flags;
    std::string error;
    if (!ParseFlags(argc, argv, {"weights", "output"}, &flags, &error)) {
      return UsageError(error);
    }
    for (const char* name : {"weights", "output"}) {
      if (FlagOr(flags, name, "").empty()) {
        return UsageError(absl::StrCat("half needs --", name));
      }
    }
    return Half(flags["weights"], flags["output"]);
  }
  if (command == "init") {
    allowed.insert({"seed", "output"});
  } else if (command == "info") {
    allowed.insert({"weights", "height", "width"});
  } else if (command == "infer") {
    allowed.insert({"weights", "input", "output"});
  } else if (command != "keys") {
    return UsageError(absl::StrCat("unknown command '", command, "'"));
  }
  std::map<std::string, std::string> flags;
  std::string error;
  Common common;
  if (!ParseFlags(argc, argv, allowed, &flags, &error) ||
      !ParseCommon(flags, &common, &error)) {
    return UsageError(error);
  }
  if (command == "keys") return Keys(common);
  if (command == "info") {
    int64_t height = 0;
    int64_t width = 0;
    if (!ParseSize(flags, &height, &width, &error)) return UsageError(error);
    return Info(common, FlagOr(flags, "weights", ""), height, width);
  }
  if (command == "infer") {
    for (const char* name : {"weights", "input", "output"}) {
      if (FlagOr(flags, name, "").empty()) {
        return UsageError(absl::StrCat("infer needs --", name));
      }
    }
    return Infer(common, flags["weights"], flags["input"], flags["output"]);
  }
  uint64_t seed;
  auto seed_flag = flags.find("seed");
  if (seed_flag == flags.end() || !absl::SimpleAtoi(seed_flag->second, &seed)) {
    return UsageError("init needs --seed with a non-negative integer");
  }
  const std::string output = FlagOr(flags, "output", "");
  if (output.empty()) return UsageError("init needs --output");
  return Init(common, seed, output);
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  try {
    return segserve::Run(argc, argv);
  } catch (const std::exception& e) {
    return segserve::Failure(segserve::ExceptionMessage(e));
  }
}
