#include "server/api/segmentation_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/mask_encoding.h"
#include "server/api/call_context.h"
#include "server/api/segment_request.h"
#include "server/api/status_mapping.h"
#include "server/core/shutting_down.h"

namespace segserve {
namespace {

void FillResponse(SegmentResult result, const std::string& request_id,
                  v1::SegmentResponse* response) {
  response->set_request_id(request_id);
  response->set_model(std::move(result.model));
  response->set_model_version(absl::StrCat(result.version));
  v1::Mask* mask = response->mutable_mask();
  mask->set_width(uint32_t(result.width));
  mask->set_height(uint32_t(result.height));
  mask->set_encoding(ToMaskEncoding(result.mask_format));
  mask->set_data(std::move(result.mask));
  mask->set_confidence(std::move(result.confidence));
  for (ClassCount& stat : result.class_stats) {
    v1::ClassStat* out = response->add_class_stats();
    out->set_class_id(uint32_t(stat.class_id));
    out->set_name(std::move(stat.name));
    out->set_pixels(stat.pixels);
  }
  v1::Timing* timing = response->mutable_timing();
  timing->set_queue_us(uint64_t(absl::ToInt64Microseconds(result.queue_time)));
  timing->set_preprocess_us(
      uint64_t(absl::ToInt64Microseconds(result.preprocess_time)));
  timing->set_inference_us(
      uint64_t(absl::ToInt64Microseconds(result.inference_time)));
  timing->set_postprocess_us(
      uint64_t(absl::ToInt64Microseconds(result.postprocess_time)));
  timing->set_batch_size(uint32_t(result.batch_size));
  timing->set_tiles(uint32_t(result.tiles));
}

v1::ModelState ToProto(ModelState state) {
  switch (state) {
    case ModelState::kLoading:
      return v1::LOADING;
    case ModelState::kReady:
      return v1::READY;
    case ModelState::kUnloading:
      return v1::UNLOADING;
    case ModelState::kUnavailable:
      break;
  }
  return v1::UNAVAILABLE;
}

void FillModelInfo(const ModelStatus& status, const std::string& version,
                   const std::string& default_model, v1::ModelInfo* info) {
  info->set_name(status.name);
  info->set_state(ToProto(status.state));
  info->set_reason(status.reason);
  info->set_is_default(status.name == default_model);
  for (const VersionStatus& v : status.versions) {
    v1::ModelVersionStatus* out = info->add_versions();
    out->set_version(absl::StrCat(v.version));
    out->set_state(ToProto(v.state));
    out->set_reason(v.reason);
  }
  if (!status.has_config) return;
  const v1::ModelConfig& config = status.config;
  info->set_platform(v1::ModelConfig::Platform_Name(config.platform()));
  info->set_architecture(config.architecture());
  info->set_input_height(config.input().height());
  info->set_input_width(config.input().width());
  info->set_input_resize(
      v1::ModelConfig::Input::Resize_Name(config.input().resize()));
  if (config.input().resize() == v1::ModelConfig::Input::SLIDE) {
    info->set_crop_height(config.input().crop_height());
    info->set_crop_width(config.input().crop_width());
    info->set_stride_height(config.input().stride_height());
    info->set_stride_width(config.input().stride_width());
  }
  *info->mutable_class_names() = config.class_names();
  info->set_max_batch_size(config.max_batch_size());
  info->set_precision(v1::ModelConfig::Precision_Name(config.precision()));
  info->set_description(config.description());
  if (status.latest_version != 0) {
    info->set_version(version.empty() ? absl::StrCat(status.latest_version)
                                      : version);
    for (const std::string& device : status.devices) {
      info->add_devices(device);
    }
    info->set_parameter_count(uint64_t(status.parameter_count));
  }
}

}  // namespace

// Segment: a unary call whose reactor notices client cancellation.
class SegmentationService::SegmentReactor final
    : public grpc::ServerUnaryReactor {
 public:
  explicit SegmentReactor(OpenCalls* calls)
      : hold_(calls), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}
  const CancelFlag& cancelled() const { return cancelled_; }
  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override { delete this; }

 private:
  const OpenCalls::Hold hold_;
  CancelFlag cancelled_;
};

grpc::ServerUnaryReactor* SegmentationService::Segment(
    grpc::CallbackServerContext* context, const v1::SegmentRequest* request,
    v1::SegmentResponse* response) {
  auto* reactor = new SegmentReactor(api_->calls());
  // Checked before the request is read: a caller without the right learns
  // nothing of what is wrong with it.
  absl::StatusOr<InferenceGrant> grant =
      api_->AuthorizeInference(ToCallContext(*context, reactor->cancelled()));
  if (!grant.ok()) {
    reactor->Finish(ToGrpcStatus(grant.status()));
    return reactor;
  }
  absl::StatusOr<SegmentJob> job = ToSegmentJob(*request);
  if (!job.ok()) {
    reactor->Finish(ToGrpcStatus(job.status()));
    return reactor;
  }
  api_->Infer(*grant, *std::move(job),
              [reactor, request,
               response](absl::StatusOr<std::vector<SegmentResult>> result) {
                if (result.ok()) {
                  FillResponse(std::move(result->front()),
                               request->request_id(), response);
                }
                reactor->Finish(ToGrpcStatus(result.status()));
              });
  return reactor;
}

// SegmentStream: frames are processed concurrently and written back in the
// order they arrived, one write at a time. The first failed frame ends the
// stream with its status, after the frames before it are written.
class SegmentationService::StreamReactor final
    : public grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse> {
 public:
  // `grant`: the stream's right to infer, checked once when it opened.
  StreamReactor(SegmentationService* service, InferenceGrant grant)
      : service_(service),
        hold_(service->api_->calls()),
        grant_(std::move(grant)) {
    StartNextRead();
    service_->AddStream(this);  // After the read: Drain may finish at once.
  }

  // The drain began: answer the frames already taken, then end the stream
  // with UNAVAILABLE instead of waiting for the client's next frame.
  void Drain() {
    absl::MutexLock lock(&mu_);
    drained_ = true;
    MaybeProgressLocked();
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeProgressLocked();
      return;
    }
    if (failed_ || finished_) return;
    auto frame = std::make_shared<Frame>();
    frame->request = std::move(incoming_);
    frames_.push_back(frame);
    ++outstanding_;
    absl::StatusOr<SegmentJob> job =
        service_->api_->draining()
            ? absl::StatusOr<SegmentJob>(ShuttingDownError())
            : ToSegmentJob(frame->request);
    if (!job.ok()) {
      CompleteLocked(*frame, job.status());
    } else {
      // The callback may run on this thread: release the lock around it.
      mu_.Unlock();
      service_->api_->Infer(
          grant_, *std::move(job),
          [this, frame](absl::StatusOr<std::vector<SegmentResult>> result) {
            absl::MutexLock lock(&mu_);
            CompleteLocked(*frame, std::move(result));
          });
      mu_.Lock();
    }
    if (!failed_) StartNextReadLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    frames_.pop_front();
    if (!ok) {
      // The client went away; stop writing but let frames finish.
      failed_ = true;
      final_status_ = grpc::Status(grpc::StatusCode::CANCELLED,
                                   "the client stopped reading responses");
    }
    // A frame left: a read held back by the in-flight bound may go on.
    if (read_held_ && !failed_ && !finished_ && !drained_) {
      StartNextReadLocked();
    }
    MaybeProgressLocked();
  }

  void OnCancel() override { grant_.context().cancelled->store(true); }
  void OnDone() override {
    service_->RemoveStream(this);
    delete this;
  }

 private:
  struct Frame {
    v1::SegmentRequest request;
    v1::SegmentResponse response;
    bool ready = false;
    grpc::Status status;
  };

  void StartNextRead() {
    absl::MutexLock lock(&mu_);
    StartNextReadLocked();
  }
  void StartNextReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    read_held_ = frames_.size() >= service_->max_frames_in_flight_;
    if (!read_held_) StartRead(&incoming_);
  }

  void CompleteLocked(Frame& frame,
                      absl::StatusOr<std::vector<SegmentResult>> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (result.ok()) {
      FillResponse(std::move(result->front()), frame.request.request_id(),
                   &frame.response);
    }
    frame.status = ToGrpcStatus(result.status());
    frame.ready = true;
    --outstanding_;
    MaybeProgressLocked();
  }

  // Writes the next response if it is ready, or finishes the stream when
  // nothing is left to do.
  void MaybeProgressLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    while (!failed_ && !frames_.empty() && frames_.front()->ready) {
      Frame& head = *frames_.front();
      if (!head.status.ok()) {
        failed_ = true;
        final_status_ = head.status;
        break;
      }
      writing_ = true;
      StartWrite(&head.response);
      return;
    }
    const bool all_written = frames_.empty() || failed_;
    if (outstanding_ == 0 && all_written &&
        (reads_done_ || failed_ || drained_)) {
      finished_ = true;
      // A pending read completes with ok=false after Finish.
      Finish(drained_ && !failed_ && !reads_done_
                 ? ToGrpcStatus(ShuttingDownError())
                 : final_status_);
    }
  }

  SegmentationService* const service_;
  const OpenCalls::Hold hold_;
  // The stream's right and context; its cancellation stops every frame.
  const InferenceGrant grant_;

  absl::Mutex mu_;
  v1::SegmentRequest incoming_;  // Target of the pending read.
  std::deque<std::shared_ptr<Frame>> frames_ ABSL_GUARDED_BY(mu_);
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // Frames being processed.
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  // No read is pending: max_frames_in_flight_ frames are taken.
  bool read_held_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

void SegmentationService::DrainStreams() {
  absl::MutexLock lock(&streams_mu_);
  for (StreamReactor* stream : streams_) stream->Drain();
}

void SegmentationService::AddStream(StreamReactor* stream) {
  absl::MutexLock lock(&streams_mu_);
  streams_.insert(stream);
  // Created after the drain began: DrainStreams may have run already.
  if (api_->draining()) stream->Drain();
}

void SegmentationService::RemoveStream(StreamReactor* stream) {
  absl::MutexLock lock(&streams_mu_);
  streams_.erase(stream);
}

SegmentationService::SegmentationService(ServingApi* api,
                                         int max_frames_in_flight)
    : api_(api),
      max_frames_in_flight_(size_t(std::max(1, max_frames_in_flight))) {
  api_->OnDrain([this] { DrainStreams(); });
}

grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse>*
SegmentationService::SegmentStream(grpc::CallbackServerContext* context) {
  class Refuse final : public grpc::ServerBidiReactor<v1::SegmentRequest,
                                                      v1::SegmentResponse> {
   public:
    Refuse(OpenCalls* calls, const absl::Status& why) : hold_(calls) {
      Finish(ToGrpcStatus(why));
    }
    void OnDone() override { delete this; }

   private:
    const OpenCalls::Hold hold_;
  };
  absl::StatusOr<InferenceGrant> grant = api_->AuthorizeInference(
      ToCallContext(*context, std::make_shared<std::atomic<bool>>(false)));
  if (!grant.ok()) return new Refuse(api_->calls(), grant.status());
  if (api_->draining()) return new Refuse(api_->calls(), ShuttingDownError());
  return new StreamReactor(this, *std::move(grant));
}

grpc::ServerUnaryReactor* SegmentationService::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<std::vector<ModelStatus>> models =
      api_->ListModels(ToCallContext(*context));
  if (models.ok()) {
    for (const ModelStatus& status : *models) {
      FillModelInfo(status, "", api_->default_model(), response->add_models());
    }
  }
  reactor->Finish(ToGrpcStatus(models.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SegmentationService::GetModel(
    grpc::CallbackServerContext* context, const v1::GetModelRequest* request,
    v1::ModelInfo* response) {
  auto* reactor = context->DefaultReactor();
  absl::StatusOr<ModelStatus> status = api_->DescribeModel(
      ToCallContext(*context), request->name(), request->version());
  if (status.ok()) {
    FillModelInfo(*status, request->version(), api_->default_model(), response);
  }
  reactor->Finish(ToGrpcStatus(status.status()));
  return reactor;
}

}  // namespace segserve
