// The checkpoint loader's own code on hostile pickles: the unpickler
// (model/pickle_reader) reading an archive's data.pkl, then the strict
// key/shape/dtype checks of LoadStateDict on what it returns, against a
// small module. The archive is made once, in memory, with a few tensor
// records for the pickle to point at. LibTorch throws on some bad reads;
// the loader's callers catch those, and so does this target.
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

#include "model/checkpoint.h"
#include "model/pickle_reader.h"

namespace {

// conv (4x3x3x3 + bias) and a batch norm, as a small real module.
struct TinyNet : torch::nn::Module {
  TinyNet() {
    register_module("conv",
                    torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)));
    register_module("bn", torch::nn::BatchNorm2d(4));
  }
};

std::string& ArchiveBytes() {
  static std::string* bytes = [] {
    auto* out = new std::string;
    caffe2::serialize::PyTorchStreamWriter writer(
        [out](const void* data, size_t size) {
          out->append(static_cast<const char*>(data), size);
          return size;
        });
    const std::string record(432, '\x01');  // 108 floats: the conv weight.
    for (int key = 0; key < 8; ++key) {
      const std::string name = "data/" + std::to_string(key);
      writer.writeRecord(name, record.data(), record.size());
    }
    writer.writeEndOfFile();
    return out;
  }();
  return *bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream archive_stream(ArchiveBytes());
  caffe2::serialize::PyTorchStreamReader archive(&archive_stream);
  const absl::string_view pickle(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<segserve::PyValuePtr> value;
  try {
    value = segserve::Unpickle(pickle, &archive);
  } catch (const std::exception&) {
    return 0;  // LibTorch's reads of the records; the loader catches these.
  }
  if (!value.ok() || (*value)->kind != segserve::PyValue::Kind::kDict) {
    return 0;
  }
  segserve::StateDict state;
  const auto& items = (*value)->items;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    if (items[i]->kind != segserve::PyValue::Kind::kString ||
        items[i + 1]->kind != segserve::PyValue::Kind::kTensor) {
      return 0;
    }
    state.emplace_back(items[i]->text, items[i + 1]->tensor);
  }
  TinyNet net;
  segserve::LoadStateDict(state, "fuzz.pt", &net).IgnoreError();
  return 0;
}
