#ifndef SEGSERVE_CONFIG_REPOSITORY_LAYOUT_H_
#define SEGSERVE_CONFIG_REPOSITORY_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve {

// The one place that knows how a model directory is laid out:
//   <model_dir>/config.pbtxt
//   <model_dir>/<version>/model.pt   version: a positive integer
inline constexpr char kModelConfigFile[] = "config.pbtxt";
inline constexpr char kModelWeightsFile[] = "model.pt";

// The versions under `model_dir`, ascending (directories named by a positive
// integer; anything else is ignored). NOT_FOUND, saying what to add, when
// there is none; INVALID_ARGUMENT when the directory cannot be listed.
absl::StatusOr<std::vector<int64_t>> ListModelVersions(
    const std::string& model_dir);

// <model_dir>/<version>/model.pt.
std::string ModelWeightsPath(const std::string& model_dir, int64_t version);

// OK when `path`, with every symlink resolved, lies inside `root` (also
// resolved), or does not exist (its reader reports that). FAILED_PRECONDITION
// naming both when a symlink leads outside: nothing outside the model
// repository is ever opened.
absl::Status CheckInsideRepository(const std::string& root,
                                   const std::string& path);

}  // namespace segserve

#endif  // SEGSERVE_CONFIG_REPOSITORY_LAYOUT_H_
