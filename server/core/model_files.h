#ifndef SEGSERVE_SERVER_CORE_MODEL_FILES_H_
#define SEGSERVE_SERVER_CORE_MODEL_FILES_H_

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
  // Size and modification time of each selected version's weights file
  // ("" when it has none): a changed file is a changed version.
  std::map<int64_t, std::string> weights_stamps;
};

// Reads <root>/<name>/config.pbtxt (or parses `config_text` instead, as if
// it were that file) and lists the versions. Nothing outside `root` is
// read: a path that leads outside is an error in `config`.
ModelFiles ReadModelFiles(const std::string& root, const std::string& name,
                          const std::optional<std::string>& config_text);

// OK when `name` can name a model directory of `root`: one path component
// that exists there as a directory. NOT_FOUND or INVALID_ARGUMENT, bounded
// and saying what is allowed, otherwise.
absl::Status CheckModelName(const std::string& root, const std::string& name);

// The model directories of `root`, sorted; INVALID_ARGUMENT when it cannot
// be listed.
absl::StatusOr<std::vector<std::string>> ListModelNames(
    const std::string& root);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_FILES_H_
