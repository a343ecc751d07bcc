#ifndef SEGSERVE_SERVER_API_OIP_EXTENSIONS_H_
#define SEGSERVE_SERVER_API_OIP_EXTENSIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/open_inference.pb.h"
#include "server/core/model_repository.h"
#include "server/core/model_statistics.h"

namespace segserve {

// The Open Inference Protocol's statistics and repository extensions, in
// the project's own types and back.

// One version's statistics message.
void ToOipStatistics(const std::string& model, int64_t version,
                     const ModelStatistics::Snapshot& snapshot,
                     inference::ModelStatistics* out);

// One entry per version (a model with no version listed gets one entry
// without a version, so that every model shows); `ready_only` keeps the
// READY versions.
void ToRepositoryIndex(const std::vector<ModelStatus>& models, bool ready_only,
                       inference::RepositoryIndexResponse* out);

// The config text a load request carries in its "config" parameter
// (string or bytes: protobuf text as in config.pbtxt), or nullopt for none.
// INVALID_ARGUMENT, saying what is allowed, for any other parameter, a
// parameter of another type, or text over 64 KiB.
absl::StatusOr<std::optional<std::string>> ConfigOverride(
    const inference::RepositoryModelLoadRequest& request);

// INVALID_ARGUMENT unless `repository_name` is empty (the server has one
// repository, which tooling names by leaving the field empty).
absl::Status CheckRepositoryName(const std::string& repository_name);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_OIP_EXTENSIONS_H_
