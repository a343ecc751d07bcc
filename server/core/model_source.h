#ifndef SEGSERVE_SERVER_CORE_MODEL_SOURCE_H_
#define SEGSERVE_SERVER_CORE_MODEL_SOURCE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segserve/v1/model_config.pb.h"

namespace segserve {

// What one model directory holds now, read without loading anything: the
// repository compares it with what it serves to decide what to (re)load.
struct ModelFiles {
  absl::StatusOr<v1::ModelConfig> config = absl::UnknownError("not read");
  // The versions the config's version policy selects (ascending); an error
  // when the directory has none.
  absl::StatusOr<std::vector<int64_t>> versions =
      absl::UnknownError("not read");
  // Each selected version's weights file; an error for a version the policy
  // names that has no directory, or one whose path leads outside the root.
  std::map<int64_t, absl::StatusOr<std::string>> weights_paths;
  // Size and modification time of each selected version's weights file
  // ("" when it has none): a changed file is a changed version.
  std::map<int64_t, std::string> weights_stamps;
};

// The source of a repository's models: a Triton-style directory,
//   <root>/<name>/config.pbtxt, <root>/<name>/<integer version>/model.pt.
// It scans and reads; it loads nothing. Nothing outside `root` is read.
class ModelDirectory {
 public:
  explicit ModelDirectory(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }

  // The model directories, sorted; INVALID_ARGUMENT when the root cannot be
  // listed.
  absl::StatusOr<std::vector<std::string>> ListModels() const;

  // OK when `name` can name a model directory: one path component that
  // exists as a directory. NOT_FOUND or INVALID_ARGUMENT, bounded and
  // saying what is allowed, otherwise.
  absl::Status CheckModelName(const std::string& name) const;

  // Reads <root>/<name>/config.pbtxt (or parses `config_text` instead, as if
  // it were that file) and lists the versions it selects.
  ModelFiles Read(const std::string& name,
                  const std::optional<std::string>& config_text) const;

 private:
  const std::string root_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_SOURCE_H_
