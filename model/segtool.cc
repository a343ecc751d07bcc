// segtool: the builtin models from the command line.
//
//   segtool keys --arch sgcpnet [--num_classes N]
//       Prints every state-dict key as "key<TAB>(shape)<TAB>dtype", the
//       format of shared/model-keys/*.keys.txt.
//   segtool init --arch sgcpnet --seed S [--num_classes N] --output model.pt
//       Writes a freshly initialized state dict (torch::manual_seed(S)), which
//       the BUILTIN loader and Python's torch.load both read.
//   segtool info --arch sgcpnet [--num_classes N] [--weights model.pt]
//       Prints the parameter count and, given weights, checks that they load
//       strictly.
//
// Exit status: 0 on success, 1 on failure, 2 on a usage error.

#include <torch/utils.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"
#include "model/sgcpnet.h"

namespace segserve {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] =
    "usage:\n"
    "  segtool keys --arch sgcpnet [--num_classes N]\n"
    "  segtool init --arch sgcpnet --seed S [--num_classes N] --output "
    "model.pt\n"
    "  segtool info --arch sgcpnet [--num_classes N] [--weights model.pt]\n";

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

struct Common {
  std::string arch;
  int64_t num_classes = SgcpNetImpl::kDefaultNumClasses;
};

// Reads --arch and --num_classes; false with a message when they are bad.
bool ParseCommon(const std::map<std::string, std::string>& flags,
                 Common* common, std::string* error) {
  auto arch = flags.find("arch");
  if (arch == flags.end()) {
    *error = "--arch is required";
    return false;
  }
  if (arch->second != "sgcpnet") {
    *error = absl::StrCat("unknown architecture '", arch->second,
                          "'; allowed: sgcpnet");
    return false;
  }
  common->arch = arch->second;
  auto classes = flags.find("num_classes");
  if (classes != flags.end() &&
      (!absl::SimpleAtoi(classes->second, &common->num_classes) ||
       common->num_classes < 1 || common->num_classes > 65536)) {
    *error = absl::StrCat("--num_classes must be 1..65536, not '",
                          classes->second, "'");
    return false;
  }
  return true;
}

int Keys(const Common& common) {
  SgcpNet net(common.num_classes);
  for (const auto& [name, tensor] : ModuleState(*net)) {
    std::printf("%s\n", DescribeTensor(name, tensor).c_str());
  }
  return 0;
}

int Init(const Common& common, uint64_t seed, const std::string& output) {
  torch::manual_seed(seed);
  SgcpNet net(common.num_classes);
  const absl::Status saved = SaveStateDict(ModuleState(*net), output);
  if (!saved.ok()) return Failure(saved.ToString());
  std::printf("wrote %s: %s, %lld classes, seed %llu\n", output.c_str(),
              common.arch.c_str(), static_cast<long long>(common.num_classes),
              static_cast<unsigned long long>(seed));
  return 0;
}

int Info(const Common& common, const std::string& weights) {
  SgcpNet net(common.num_classes);
  int64_t parameters = 0;
  for (const torch::Tensor& parameter : net->parameters()) {
    parameters += parameter.numel();
  }
  const StateDict state = ModuleState(*net);
  std::printf(
      "architecture: %s\nclasses: %lld\nparameters: %lld\n"
      "state-dict keys: %zu\noutput stride: %lld\n",
      common.arch.c_str(), static_cast<long long>(common.num_classes),
      static_cast<long long>(parameters), state.size(),
      static_cast<long long>(SgcpNetImpl::kOutputStride));
  if (!weights.empty()) {
    const absl::Status loaded = LoadStateDictFile(weights, net.get());
    if (!loaded.ok()) return Failure(loaded.ToString());
    std::printf("weights: %s loads strictly\n", weights.c_str());
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
  if (command == "init") {
    allowed.insert({"seed", "output"});
  } else if (command == "info") {
    allowed.insert("weights");
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
    auto weights = flags.find("weights");
    return Info(common, weights == flags.end() ? "" : weights->second);
  }
  uint64_t seed;
  auto seed_flag = flags.find("seed");
  if (seed_flag == flags.end() || !absl::SimpleAtoi(seed_flag->second, &seed)) {
    return UsageError("init needs --seed with a non-negative integer");
  }
  auto output = flags.find("output");
  if (output == flags.end() || output->second.empty()) {
    return UsageError("init needs --output");
  }
  return Init(common, seed, output->second);
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
