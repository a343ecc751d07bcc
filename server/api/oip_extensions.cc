#include "server/api/oip_extensions.h"

#include "absl/strings/str_cat.h"
#include "common/client_text.h"

namespace segserve {
namespace {

constexpr size_t kMaxConfigBytes = 64 << 10;

void ToOipDuration(const DurationTotal& total,
                   inference::StatisticDuration* out) {
  out->set_count(total.count);
  out->set_ns(uint64_t(absl::ToInt64Nanoseconds(total.total)));
}

}  // namespace

void ToOipStatistics(const std::string& model, int64_t version,
                     const ModelStatistics::Snapshot& snapshot,
                     inference::ModelStatistics* out) {
  out->set_name(model);
  out->set_version(absl::StrCat(version));
  if (snapshot.last_inference > absl::UnixEpoch()) {
    out->set_last_inference(
        uint64_t(absl::ToUnixMillis(snapshot.last_inference)));
  }
  out->set_inference_count(snapshot.inference_count);
  out->set_execution_count(snapshot.execution_count);
  auto* stats = out->mutable_inference_stats();
  ToOipDuration(snapshot.success, stats->mutable_success());
  ToOipDuration(snapshot.fail, stats->mutable_fail());
  ToOipDuration(snapshot.queue, stats->mutable_queue());
  ToOipDuration(snapshot.compute_input, stats->mutable_compute_input());
  ToOipDuration(snapshot.compute_infer, stats->mutable_compute_infer());
  ToOipDuration(snapshot.compute_output, stats->mutable_compute_output());
  for (const auto& [size, infer] : snapshot.batch_infer) {
    auto* batch = out->add_batch_stats();
    batch->set_batch_size(uint64_t(size));
    ToOipDuration(infer, batch->mutable_compute_infer());
  }
}

void ToRepositoryIndex(const std::vector<ModelStatus>& models, bool ready_only,
                       inference::RepositoryIndexResponse* out) {
  for (const ModelStatus& model : models) {
    if (model.versions.empty()) {
      if (ready_only) continue;
      auto* entry = out->add_models();
      entry->set_name(model.name);
      entry->set_state(ModelStateName(model.state));
      entry->set_reason(model.reason);
      continue;
    }
    for (const VersionStatus& version : model.versions) {
      if (ready_only && version.state != ModelState::kReady) continue;
      auto* entry = out->add_models();
      entry->set_name(model.name);
      entry->set_version(absl::StrCat(version.version));
      entry->set_state(ModelStateName(version.state));
      entry->set_reason(version.reason);
    }
  }
}

absl::StatusOr<std::optional<std::string>> ConfigOverride(
    const inference::RepositoryModelLoadRequest& request) {
  std::optional<std::string> config;
  for (const auto& [key, value] : request.parameters()) {
    if (key != "config") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown load parameter ", QuoteClientText(key),
          "; allowed: \"config\" (a config.pbtxt's text, as string_param or "
          "bytes_param)"));
    }
    if (value.has_string_param()) {
      config = value.string_param();
    } else if (value.has_bytes_param()) {
      config = value.bytes_param();
    } else {
      return absl::InvalidArgumentError(
          "the load parameter \"config\" must be a string_param or "
          "bytes_param holding a config.pbtxt's text");
    }
    if (config->size() > kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the load parameter \"config\" has ", config->size(),
                       " bytes; at most ", kMaxConfigBytes, " are allowed"));
    }
  }
  return config;
}

absl::Status CheckRepositoryName(const std::string& repository_name) {
  if (repository_name.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown repository ", QuoteClientText(repository_name),
      "; segserve serves one repository: leave repository_name empty"));
}

}  // namespace segserve
