#include "model/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/pickle_reader.h"

namespace segserve {
namespace {

using caffe2::serialize::PyTorchStreamReader;

// At most this many names per category in a mismatch message.
constexpr size_t kMaxListedKeys = 12;

absl::StatusOr<std::unique_ptr<PyTorchStreamReader>> OpenArchive(
    const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  char magic[4] = {};
  {
    std::ifstream file(path, std::ios::binary);
    file.read(magic, sizeof(magic));
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot read (or shorter than 4 bytes)"));
    }
  }
  if (std::memcmp(magic, "PK\x03\x04", 4) != 0) {
    if (static_cast<uint8_t>(magic[0]) == 0x80) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ": legacy torch.save format (PyTorch < 1.6 or "
          "_use_new_zipfile_serialization=False); re-save it with a current "
          "torch.save"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": not a PyTorch file; expected a zip archive written by torch.save "
        "(a state dict) or torch.jit.save (TorchScript)"));
  }
  try {
    return std::make_unique<PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a readable PyTorch archive: ", ExceptionMessage(e)));
  }
}

absl::StatusOr<ModelFileFormat> FormatOf(const std::string& path,
                                         PyTorchStreamReader& archive) {
  bool has_code = archive.hasRecord("constants.pkl");
  for (const std::string& record : archive.getAllRecords()) {
    if (record.rfind("code/", 0) == 0) has_code = true;
  }
  if (has_code) return ModelFileFormat::kTorchScript;
  if (archive.hasRecord("data.pkl")) return ModelFileFormat::kStateDict;
  return absl::InvalidArgumentError(absl::StrCat(
      path,
      ": PyTorch archive with neither data.pkl (torch.save) nor code/ "
      "(torch.jit.save)"));
}

absl::StatusOr<StateDict> ToStateDict(const std::string& path,
                                      const PyValue& root) {
  if (root.kind != PyValue::Kind::kDict) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds a ", KindName(root.kind),
                     ", expected a {name: tensor} dict"));
  }
  StateDict state;
  std::set<std::string> seen;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PyValue& key = *root.items[i];
    const PyValue& value = *root.items[i + 1];
    if (key.kind != PyValue::Kind::kString) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": a key is a ", KindName(key.kind),
                       ", expected string names"));
    }
    if (value.kind == PyValue::Kind::kDict) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": key '", key.text,
          "' holds a nested dict; a checkpoint wrapper? Export the flat state "
          "dict itself, e.g. torch.save(ckpt['",
          key.text, "'], path)"));
    }
    if (value.kind != PyValue::Kind::kTensor) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": key '", key.text, "' holds a ",
                       KindName(value.kind), ", expected a tensor"));
    }
    if (!seen.insert(key.text).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": duplicate key '", key.text, "'"));
    }
    state.emplace_back(key.text, value.tensor);
  }
  return state;
}

std::string ShapeString(torch::IntArrayRef sizes) {
  if (sizes.size() == 1) return absl::StrCat("(", sizes[0], ",)");
  return absl::StrCat("(", absl::StrJoin(sizes, ", "), ")");
}

std::string DtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return "float32";
    case torch::kDouble:
      return "float64";
    case torch::kHalf:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kLong:
      return "int64";
    case torch::kInt:
      return "int32";
    case torch::kShort:
      return "int16";
    case torch::kChar:
      return "int8";
    case torch::kByte:
      return "uint8";
    case torch::kBool:
      return "bool";
    default:
      return c10::toString(dtype);
  }
}

// "a, b, c" with at most kMaxListedKeys names.
std::string ListNames(const std::vector<std::string>& names) {
  if (names.size() <= kMaxListedKeys) return absl::StrJoin(names, ", ");
  return absl::StrCat(
      absl::StrJoin(names.begin(), names.begin() + kMaxListedKeys, ", "),
      ", ... (", names.size() - kMaxListedKeys, " more)");
}

}  // namespace

std::string ExceptionMessage(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return error->what_without_backtrace();
  }
  return e.what();
}

StateDict ModuleState(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_modules()) {
    const std::string prefix =
        item.key().empty() ? std::string() : absl::StrCat(item.key(), ".");
    for (const auto& param : item.value()->named_parameters(false)) {
      state.emplace_back(absl::StrCat(prefix, param.key()), param.value());
    }
    for (const auto& buffer : item.value()->named_buffers(false)) {
      state.emplace_back(absl::StrCat(prefix, buffer.key()), buffer.value());
    }
  }
  return state;
}

std::string DescribeTensor(absl::string_view name,
                           const torch::Tensor& tensor) {
  return absl::StrCat(name, "\t", ShapeString(tensor.sizes()), "\t",
                      DtypeName(tensor.scalar_type()));
}

absl::StatusOr<ModelFileFormat> DetectModelFileFormat(const std::string& path) {
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<PyTorchStreamReader> archive,
                            OpenArchive(path));
  try {
    return FormatOf(path, *archive);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", ExceptionMessage(e)));
  }
}

absl::StatusOr<StateDict> ReadStateDict(const std::string& path) {
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<PyTorchStreamReader> archive,
                            OpenArchive(path));
  try {
    SEGSERVE_ASSIGN_OR_RETURN(ModelFileFormat format, FormatOf(path, *archive));
    if (format == ModelFileFormat::kTorchScript) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ": is a TorchScript archive (torch.jit.save), not a state "
          "dict (torch.save)"));
    }
    if (archive->hasRecord("byteorder")) {
      auto [data, size] = archive->getRecord("byteorder");
      const absl::string_view order(static_cast<const char*>(data.get()), size);
      if (order != "little") {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": byte order '", order,
                         "' is not supported, only little-endian"));
      }
    }
    auto [data, size] = archive->getRecord("data.pkl");
    absl::StatusOr<PyValuePtr> root =
        Unpickle(absl::string_view(static_cast<const char*>(data.get()), size),
                 archive.get());
    if (!root.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": cannot read the saved dict: ", root.status().message()));
    }
    return ToStateDict(path, **root);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", ExceptionMessage(e)));
  }
}

absl::Status LoadStateDict(const StateDict& state, absl::string_view source,
                           torch::nn::Module* module) {
  try {
    std::unordered_map<std::string, const torch::Tensor*> provided;
    for (const auto& [name, tensor] : state) {
      if (!provided.emplace(name, &tensor).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": duplicate key '", name, "'"));
      }
    }
    const StateDict targets = ModuleState(*module);
    std::vector<std::string> missing, mis_shaped, unexpected;
    std::set<std::string> expected;
    for (const auto& [name, target] : targets) {
      expected.insert(name);
      auto it = provided.find(name);
      if (it == provided.end()) {
        missing.push_back(name);
      } else if (it->second->sizes() != target.sizes()) {
        mis_shaped.push_back(
            absl::StrCat(name, " (file ", ShapeString(it->second->sizes()),
                         ", model ", ShapeString(target.sizes()), ")"));
      }
    }
    bool all_prefixed = !state.empty();
    for (const auto& [name, tensor] : state) {
      if (expected.count(name) == 0) unexpected.push_back(name);
      all_prefixed = all_prefixed && name.rfind("module.", 0) == 0;
    }
    if (!missing.empty() || !unexpected.empty() || !mis_shaped.empty()) {
      std::vector<std::string> problems;
      if (!missing.empty()) {
        problems.push_back(absl::StrCat(
            missing.size(), " missing key(s): ", ListNames(missing)));
      }
      if (!unexpected.empty()) {
        problems.push_back(absl::StrCat(
            unexpected.size(), " unexpected key(s): ", ListNames(unexpected)));
      }
      if (!mis_shaped.empty()) {
        problems.push_back(absl::StrCat(
            mis_shaped.size(), " mis-shaped key(s): ", ListNames(mis_shaped)));
      }
      std::string hint;
      if (all_prefixed) {
        hint =
            " (every key starts with 'module.': strip the DataParallel "
            "prefix when exporting)";
      }
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": state dict does not match the architecture: ",
                       absl::StrJoin(problems, "; "), hint));
    }
    torch::NoGradGuard no_grad;
    for (const auto& [name, target] : targets) {
      // Tensors share TensorImpls with the module, so copy_ writes into it.
      torch::Tensor destination = target;
      destination.copy_(*provided.at(name));
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": cannot load state: ", ExceptionMessage(e)));
  }
}

absl::Status LoadStateDictFile(const std::string& path,
                               torch::nn::Module* module) {
  SEGSERVE_ASSIGN_OR_RETURN(StateDict state, ReadStateDict(path));
  return LoadStateDict(state, path, module);
}

absl::Status SaveStateDict(const StateDict& state, const std::string& path) {
  std::vector<char> bytes;
  try {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& [name, tensor] : state) {
      if (dict.contains(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": duplicate key '", name, "'"));
      }
      dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
    }
    bytes = torch::pickle_save(c10::IValue(dict));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot serialize: ", ExceptionMessage(e)));
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  file.close();
  if (!file) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot write: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace segserve
