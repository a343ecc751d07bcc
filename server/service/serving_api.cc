#include "server/service/serving_api.h"

#include <utility>

#include "common/status_macros.h"
#include "server/core/shutting_down.h"
#include "server/service/model_version.h"

namespace segserve {

ServingApi::ServingApi(SegmentProcessor* processor, InferenceCore* core,
                       ModelRepository* repository,
                       const TokenAuthorizer* authorizer)
    : processor_(processor),
      core_(core),
      repository_(repository),
      authorizer_(authorizer) {}

ServingApi::~ServingApi() = default;

bool ServingApi::Ready() const {
  return !core_->draining() && repository_->IsReady();
}

void ServingApi::OnDrain(absl::AnyInvocable<void()> start_draining) {
  on_drain_.push_back(std::move(start_draining));
}

void ServingApi::StartDraining() {
  core_->StartDraining();
  for (auto& start_draining : on_drain_) start_draining();
}

absl::Status ServingApi::Authorize(const CallContext& context,
                                   Right right) const {
  if (authorizer_ == nullptr) return absl::OkStatus();
  return authorizer_->Check(context.authorization, right);
}

absl::StatusOr<InferenceGrant> ServingApi::AuthorizeInference(
    CallContext context) const {
  SEGSERVE_RETURN_IF_ERROR(Authorize(context, Right::kInference));
  return InferenceGrant(std::move(context));
}

void ServingApi::Infer(const InferenceGrant& grant, SegmentJob job,
                       InferDone done) {
  job.deadline = grant.context().deadline;
  job.cancelled = grant.context().cancelled;
  processor_->Process(std::move(job), std::move(done));
}

absl::StatusOr<std::vector<ModelStatus>> ServingApi::ListModels(
    const CallContext& context) const {
  SEGSERVE_RETURN_IF_ERROR(Authorize(context, Right::kMetadata));
  return repository_->List();
}

absl::StatusOr<ModelStatus> ServingApi::DescribeModel(
    const CallContext& context, const std::string& name,
    const std::string& version) const {
  SEGSERVE_RETURN_IF_ERROR(Authorize(context, Right::kMetadata));
  SEGSERVE_ASSIGN_OR_RETURN(const int64_t number, ParseModelVersion(version));
  absl::StatusOr<ModelStatus> status = repository_->Describe(name);
  if (!status.ok() || number == 0) return status;
  // A version that exists but is not ready is described; an unknown one
  // is NOT_FOUND.
  auto served = repository_->Find(status->name, number);
  if (!served.ok() &&
      served.status().code() != absl::StatusCode::kUnavailable) {
    return served.status();
  }
  return status;
}

absl::StatusOr<bool> ServingApi::ModelReady(const CallContext& context,
                                            const std::string& name,
                                            const std::string& version) const {
  SEGSERVE_RETURN_IF_ERROR(Authorize(context, Right::kMetadata));
  SEGSERVE_ASSIGN_OR_RETURN(const int64_t number, ParseModelVersion(version));
  auto served = repository_->Find(name, number);
  // Known but not ready is an answer, false; unknown is an error.
  if (!served.ok() &&
      served.status().code() != absl::StatusCode::kUnavailable) {
    return served.status();
  }
  return served.ok() && !core_->draining();
}

absl::StatusOr<std::vector<VersionStatistics>> ServingApi::Statistics(
    const CallContext& context, const std::string& name,
    const std::string& version) const {
  SEGSERVE_RETURN_IF_ERROR(Authorize(context, Right::kMetadata));
  SEGSERVE_ASSIGN_OR_RETURN(const int64_t number, ParseModelVersion(version));
  std::vector<VersionStatistics> out;
  if (number != 0) {
    SEGSERVE_ASSIGN_OR_RETURN(const std::shared_ptr<ServedModel> served,
                              repository_->Find(name, number));
    out.push_back({served->config().name(), served->version(),
                   served->statistics().Read()});
    return out;
  }
  std::vector<ModelStatus> models;
  if (name.empty()) {
    models = repository_->List();
  } else {
    SEGSERVE_ASSIGN_OR_RETURN(ModelStatus model, repository_->Describe(name));
    models.push_back(std::move(model));
  }
  for (const ModelStatus& model : models) {
    for (const VersionStatus& each : model.versions) {
      if (each.state != ModelState::kReady) continue;
      auto served = repository_->Find(model.name, each.version);
      if (!served.ok()) continue;  // Retired since it was listed.
      out.push_back({model.name, each.version, (*served)->statistics().Read()});
    }
  }
  return out;
}

const std::string& ServingApi::default_model() const {
  return repository_->default_model();
}

void ServingApi::ChangeModels(const CallContext& context,
                              absl::AnyInvocable<absl::Status()> change,
                              ControlDone done) {
  absl::Status allowed = Authorize(context, Right::kAdmin);
  if (allowed.ok() && core_->draining()) allowed = ShuttingDownError();
  if (!allowed.ok()) {
    done(allowed);
    return;
  }
  control_thread_->Schedule(
      [change = std::move(change), done = std::move(done)]() mutable {
        done(change());
      });
}

void ServingApi::LoadModel(const CallContext& context, const std::string& name,
                           std::optional<std::string> config_text,
                           ControlDone done) {
  ChangeModels(
      context,
      [this, name, config = std::move(config_text)] {
        return repository_->Load(name, config);
      },
      std::move(done));
}

void ServingApi::UnloadModel(const CallContext& context,
                             const std::string& name, ControlDone done) {
  ChangeModels(
      context, [this, name] { return repository_->Unload(name); },
      std::move(done));
}

}  // namespace segserve
