#include "server/core/model_source.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/client_text.h"
#include "config/model_config.h"
#include "config/repository_layout.h"
#include "config/version_policy.h"

namespace segserve {
namespace fs = std::filesystem;

namespace {

std::string WeightsStamp(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  if (error) return "";
  const auto modified = fs::last_write_time(path, error);
  if (error) return "";
  return absl::StrCat(size, "@", modified.time_since_epoch().count());
}

}  // namespace

ModelFiles ModelDirectory::Read(
    const std::string& name,
    const std::optional<std::string>& config_text) const {
  ModelFiles files;
  const fs::path dir = fs::path(root_) / name;
  for (const fs::path& path : {dir, dir / kModelConfigFile}) {
    if (absl::Status inside = CheckInsideRepository(root_, path);
        !inside.ok()) {
      files.config = inside;
      return files;
    }
  }
  files.config = config_text.has_value()
                     ? ParseModelConfig(*config_text,
                                        "the config of the load request", name)
                     : LoadModelConfig(dir.string());
  if (!files.config.ok()) return files;
  absl::StatusOr<std::vector<int64_t>> on_disk =
      ListModelVersions(dir.string());
  if (!on_disk.ok()) {
    files.versions = on_disk.status();
    return files;
  }
  files.versions = SelectVersions(*files.config, *on_disk);
  for (int64_t version : *files.versions) {
    const std::string weights = ModelWeightsPath(dir.string(), version);
    files.weights_stamps[version] = WeightsStamp(weights);
    std::error_code error;
    if (!fs::is_directory(dir / absl::StrCat(version), error)) {
      files.weights_paths[version] = absl::NotFoundError(absl::StrCat(
          "the version policy (", DescribeVersionPolicy(*files.config),
          ") selects version ", version, ", and ", dir.string(),
          " has no directory ", version));
      continue;
    }
    absl::Status inside = CheckInsideRepository(root_, weights);
    files.weights_paths[version] =
        inside.ok() ? absl::StatusOr<std::string>(weights) : inside;
  }
  return files;
}

absl::Status ModelDirectory::CheckModelName(const std::string& name) const {
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string("/\\\0", 3)) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name ", QuoteClientText(name),
        " is not a model directory's name: one path component, not '.' or "
        "'..', without '/' (the repository index lists them)"));
  }
  std::error_code error;
  if (!fs::is_directory(fs::path(root_) / name, error)) {
    return absl::NotFoundError(absl::StrCat(
        "unknown model ", QuoteClientText(name),
        ": the repository has no such directory (the repository index lists "
        "the models)"));
  }
  return CheckInsideRepository(root_, (fs::path(root_) / name).string());
}

absl::StatusOr<std::vector<std::string>> ModelDirectory::ListModels() const {
  std::error_code error;
  fs::directory_iterator it(root_, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot list the model repository '", root_,
                     "': ", error.message(), "; name an existing directory"));
  }
  std::vector<std::string> names;
  for (const auto& entry : it) {
    if (entry.is_directory(error)) names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace segserve
