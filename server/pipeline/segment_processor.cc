#include "server/pipeline/segment_processor.h"

#include <array>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/preprocess.h"

namespace segserve {

struct SegmentProcessor::Call {
  SegmentJob job;
  Done done;
  absl::Time received;
  std::shared_ptr<ServedModel> model;
  std::string model_label;  // For metrics when no model was found.
  ContentRegion region;
  int image_width = 0;
  int image_height = 0;
  absl::Duration preprocess_time;
};

namespace {

std::vector<ClassCount> CountClasses(const cv::Mat& labels,
                                     const v1::ModelConfig& config) {
  std::map<int, uint64_t> counts;
  if (labels.depth() == CV_8U) {
    std::array<uint64_t, 256> histogram{};
    for (int y = 0; y < labels.rows; ++y) {
      const uint8_t* row = labels.ptr<uint8_t>(y);
      for (int x = 0; x < labels.cols; ++x) ++histogram[row[x]];
    }
    for (int id = 0; id < 256; ++id) {
      if (histogram[id] > 0) counts[id] = histogram[id];
    }
  } else {
    for (int y = 0; y < labels.rows; ++y) {
      const uint16_t* row = labels.ptr<uint16_t>(y);
      for (int x = 0; x < labels.cols; ++x) ++counts[row[x]];
    }
  }
  std::vector<ClassCount> stats;
  for (const auto& [id, pixels] : counts) {
    const std::string name = id < config.class_names_size()
                                 ? config.class_names(id)
                                 : absl::StrCat("class_", id);
    stats.push_back({id, name, pixels});
  }
  return stats;
}

}  // namespace

SegmentProcessor::SegmentProcessor(Options options,
                                   const ModelRepository* repository,
                                   ThreadPool* pool, Metrics* metrics,
                                   Clock* clock)
    : options_(options),
      repository_(repository),
      pool_(pool),
      metrics_(metrics),
      clock_(clock) {}

void SegmentProcessor::Process(SegmentJob job, Done done) {
  auto call = std::make_shared<Call>();
  call->received = clock_->Now();
  call->model_label =
      job.model.empty() ? repository_->default_model() : job.model;
  call->job = std::move(job);
  call->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    ++inflight_;
  }
  metrics_->inflight_requests().Increment();

  absl::StatusOr<std::shared_ptr<ServedModel>> model =
      repository_->Find(call->job.model, call->job.version);
  if (!model.ok()) {
    Finish(*call, model.status());
    return;
  }
  call->model = *std::move(model);
  // Settled by Enqueue, or by Unexpect when preprocessing fails.
  call->model->Expect();
  const uint64_t default_timeout_us =
      call->model->config().dynamic_batching().default_timeout_us();
  if (call->job.deadline == absl::InfiniteFuture() && default_timeout_us > 0) {
    call->job.deadline =
        call->received + absl::Microseconds(default_timeout_us);
  }
  pool_->Schedule([this, call]() mutable { Preprocess(std::move(call)); });
}

void SegmentProcessor::Preprocess(std::shared_ptr<Call> call) {
  const SegmentJob& job = call->job;
  auto fail = [&](absl::Status status) {
    call->model->Unexpect();
    Finish(*call, std::move(status));
  };
  if (job.cancelled && job.cancelled->load()) {
    fail(absl::CancelledError("the client cancelled the request"));
    return;
  }
  if (clock_->Now() >= job.deadline) {
    fail(absl::DeadlineExceededError(
        "the request's deadline passed before preprocessing; allow a longer "
        "deadline or send less load"));
    return;
  }
  const absl::Time start = clock_->Now();
  absl::StatusOr<cv::Mat> rgb =
      job.raw ? RawToRgb(job.raw_width, job.raw_height, job.raw_format,
                         job.raw_data, options_.max_image_pixels)
              : DecodeImage(job.encoded, options_.max_image_pixels);
  if (!rgb.ok()) {
    fail(rgb.status());
    return;
  }
  call->image_width = rgb->cols;
  call->image_height = rgb->rows;

  const PreprocessOptions& preprocess = call->model->preprocess();
  auto request = std::make_unique<InferenceRequest>();
  request->input.resize(3 * size_t(preprocess.height) * preprocess.width);
  call->region = segserve::Preprocess(*rgb, preprocess, request->input.data());
  call->preprocess_time = clock_->Now() - start;
  call->model->metrics().preprocess_seconds->Observe(
      absl::ToDoubleSeconds(call->preprocess_time));

  request->with_confidence = job.with_confidence;
  request->priority = job.priority;
  request->deadline = job.deadline;
  request->cancelled = job.cancelled;
  // Runs on a model instance's thread. Everything else moves to the pool,
  // including the last reference to the call: releasing the served model
  // from its own instance thread would make that thread join itself.
  request->done = [this, call](BatchResult batch) mutable {
    pool_->Schedule(
        [this, call = std::move(call), batch = std::move(batch)]() mutable {
          if (!batch.status.ok()) {
            Finish(*call, std::move(batch.status));
            return;
          }
          Postprocess(std::move(call), std::move(batch));
        });
  };
  absl::Status queued = call->model->Enqueue(request);
  if (!queued.ok()) Finish(*call, queued);
}

void SegmentProcessor::Postprocess(std::shared_ptr<Call> call,
                                   BatchResult batch) {
  const absl::Time start = clock_->Now();
  const v1::ModelConfig& config = call->model->config();
  SegmentResult result;
  result.model = config.name();
  result.version = call->model->version();
  result.width = call->image_width;
  result.height = call->image_height;
  result.mask_format = call->job.mask_format;

  const cv::Mat labels = MapToImageSize(batch.output.labels, call->region,
                                        call->image_width, call->image_height);
  absl::StatusOr<std::string> mask = EncodeMask(labels, call->job.mask_format);
  if (!mask.ok()) {
    Finish(*call, absl::InternalError(absl::StrCat("encoding the mask failed: ",
                                                   mask.status().message())));
    return;
  }
  result.mask = *std::move(mask);
  if (call->job.with_confidence && !batch.output.confidence.empty()) {
    const cv::Mat confidence =
        MapToImageSize(batch.output.confidence, call->region, call->image_width,
                       call->image_height);
    result.confidence.assign(reinterpret_cast<const char*>(confidence.data),
                             confidence.total());
  }
  result.class_stats = CountClasses(labels, config);
  result.queue_time = batch.queue_time;
  result.preprocess_time = call->preprocess_time;
  result.inference_time = batch.inference_time;
  result.batch_size = batch.batch_size;
  result.postprocess_time = clock_->Now() - start;
  call->model->metrics().postprocess_seconds->Observe(
      absl::ToDoubleSeconds(result.postprocess_time));
  Finish(*call, std::move(result));
}

void SegmentProcessor::Finish(Call& call,
                              absl::StatusOr<SegmentResult> result) {
  const std::string code = absl::StatusCodeToString(result.status().code());
  const std::string model =
      call.model ? call.model->config().name() : call.model_label;
  const std::string version = call.model ? call.model->version() : "";
  metrics_->CountRequest(model, version, code, clock_->Now() - call.received);
  call.done(std::move(result));
  metrics_->inflight_requests().Decrement();
  absl::MutexLock lock(&mu_);
  --inflight_;
}

int SegmentProcessor::inflight() const {
  absl::MutexLock lock(&mu_);
  return inflight_;
}

bool SegmentProcessor::WaitForIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return inflight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

}  // namespace segserve
