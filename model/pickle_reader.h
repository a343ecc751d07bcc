#ifndef SEGSERVE_MODEL_PICKLE_READER_H_
#define SEGSERVE_MODEL_PICKLE_READER_H_

// Includes LibTorch: for model/*.cc only.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}  // namespace caffe2::serialize

namespace segserve {

// A minimal unpickler for torch.save'd dicts of tensors.
//
// LibTorch's torch::pickle_load cannot read what torch.save(model.state_dict())
// writes: its unpickler turns every collections.OrderedDict into None (it only
// expects them as empty tensor-hook dicts) and does not support BUILD on a
// dict (the state dict's _metadata). So the pickle is interpreted here. Only
// the objects a state dict is made of are supported: dicts, OrderedDicts,
// lists, tuples, strings, numbers, tensors and Parameters; any other object is
// an error naming its class. Every read is bounds-checked.

struct PyValue;
using PyValuePtr = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor,
  };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;  // kInt, kBool.
  double float_value = 0;
  std::string text;               // kString, kBytes; kGlobal: "module.name".
  std::vector<PyValuePtr> items;  // kTuple, kList; kDict: key, value, ...
  torch::Tensor tensor;           // kTensor; kStorage: all of its elements.
};

// "dict", "tensor", ...: the Python name of a kind, for messages.
const char* KindName(PyValue::Kind kind);

// The object `pickle` (an archive's data.pkl) holds, its tensors read from
// `archive`'s "data/<key>" records. INVALID_ARGUMENT saying what and where
// (the pickle byte) for anything malformed or unsupported. May throw from
// LibTorch while reading records; the caller catches.
absl::StatusOr<PyValuePtr> Unpickle(
    absl::string_view pickle, caffe2::serialize::PyTorchStreamReader* archive);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_PICKLE_READER_H_
