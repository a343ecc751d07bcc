// State dicts: reading the files Python's torch.save writes, strict loading
// into a torch::nn::Module by name, and saving a module's state in a form
// Python's torch.load reads.
//
// LibTorch throws; every function here catches at this boundary and returns
// an absl::Status whose message names the file. Only model/*.cc and tests
// include this header (it pulls in LibTorch).

#ifndef SEGSERVE_MODEL_CHECKPOINT_H_
#define SEGSERVE_MODEL_CHECKPOINT_H_

#include <torch/nn/module.h>
#include <torch/types.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segserve {

// A flat, ordered {name: tensor} dict.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// The module's parameters and buffers (num_batches_tracked included) in the
// order of PyTorch's Module.state_dict(): modules in pre-order, each one's own
// parameters, then its own buffers. The tensors share storage with the
// module.
StateDict ModuleState(const torch::nn::Module& module);

// One line of shared/model-keys/*.keys.txt: "name\t(16, 3, 3, 3)\tfloat32",
// shapes as Python tuples ("(16,)", "()"), dtypes as torch spells them.
std::string DescribeTensor(absl::string_view name, const torch::Tensor& tensor);

enum class ModelFileFormat {
  kStateDict,    // torch.save of a {name: tensor} dict (zip format).
  kTorchScript,  // torch.jit.save archive (has code/ and constants.pkl).
};

// Tells the two apart by content. NOT_FOUND when the file does not exist;
// INVALID_ARGUMENT for anything else (legacy non-zip torch.save files, other
// formats), with what was found and what is accepted.
absl::StatusOr<ModelFileFormat> DetectModelFileFormat(const std::string& path);

// Reads a dict saved by Python torch.save (zip format, any pickle protocol
// 2..5): a plain dict or an OrderedDict such as model.state_dict() (its
// _metadata is ignored). Keys must be strings and values tensors (Parameters
// are read as tensors); anything else is INVALID_ARGUMENT naming the key.
// Tensors come back on the CPU.
absl::StatusOr<StateDict> ReadStateDict(const std::string& path);

// Copies `state` into `module` strictly by name: any missing, unexpected or
// mis-shaped key is INVALID_ARGUMENT listing them, prefixed by `source` (the
// file name), and nothing is copied. Floating values are converted to the
// module's dtype and device.
absl::Status LoadStateDict(const StateDict& state, absl::string_view source,
                           torch::nn::Module* module);

// ReadStateDict + LoadStateDict.
absl::Status LoadStateDictFile(const std::string& path,
                               torch::nn::Module* module);

// Writes `state` (copied to the CPU) as a plain dict in torch.save's zip
// format, loadable by Python's torch.load and by ReadStateDict. Duplicate
// names are INVALID_ARGUMENT.
absl::Status SaveStateDict(const StateDict& state, const std::string& path);

// The message of an exception, without LibTorch's C++ backtrace.
std::string ExceptionMessage(const std::exception& e);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_CHECKPOINT_H_
