#include "config/repository_layout.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace segserve {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<int64_t>> ListModelVersions(
    const std::string& model_dir) {
  std::error_code error;
  fs::directory_iterator it(model_dir, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot list the model directory ", model_dir, ": ", error.message()));
  }
  std::vector<int64_t> versions;
  for (const auto& item : it) {
    int64_t version = 0;
    if (item.is_directory() &&
        absl::SimpleAtoi(item.path().filename().string(), &version) &&
        version > 0) {
      versions.push_back(version);
    }
  }
  if (versions.empty()) {
    return absl::NotFoundError(
        absl::StrCat(model_dir, " has no version directory; add <positive ",
                     "integer>/", kModelWeightsFile));
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

std::string ModelWeightsPath(const std::string& model_dir, int64_t version) {
  return (fs::path(model_dir) / absl::StrCat(version) / kModelWeightsFile)
      .string();
}

absl::Status CheckInsideRepository(const std::string& root,
                                   const std::string& path) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(path, error))) return absl::OkStatus();
  const fs::path real_root = fs::canonical(root, error);
  if (error) return absl::OkStatus();  // The repository's own listing fails.
  const fs::path real = fs::weakly_canonical(path, error);
  if (error) return absl::OkStatus();
  // Inside when the root is a prefix of the path, component by component.
  auto [root_end, path_at] = std::mismatch(real_root.begin(), real_root.end(),
                                           real.begin(), real.end());
  if (root_end == real_root.end()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(path, " leads to ", real.string(),
                   ", outside the model repository ", real_root.string(),
                   "; segserve opens nothing outside --model_repository"));
}

}  // namespace segserve
