#include "server/pipeline/segment_processor.h"

#include <array>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/preprocess.h"

namespace segserve {

// The batch items one image becomes, and where each one's answer goes back
// in the image. The whole image as one item, resized as the model's input
// mode says; sliding windows will plan overlapping tiles here.
struct ImagePlan {
  std::vector<ContentRegion> regions;  // One per item, in submission order.
};

struct SegmentProcessor::Call {
  SegmentJob job;
  Done done;
  std::unique_ptr<RequestTicket> ticket;
  ImagePlan plan;
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

SegmentProcessor::SegmentProcessor(Options options, InferenceCore* core)
    : options_(options), core_(core) {}

void SegmentProcessor::Process(SegmentJob job, Done done) {
  absl::StatusOr<std::unique_ptr<RequestTicket>> ticket =
      core_->Admit({job.model, job.version, job.deadline});
  if (!ticket.ok()) {
    done(ticket.status());
    return;
  }
  auto call = std::make_shared<Call>();
  call->job = std::move(job);
  call->done = std::move(done);
  call->ticket = *std::move(ticket);
  call->job.deadline = call->ticket->deadline();
  core_->pool()->Schedule(
      [this, call]() mutable { Preprocess(std::move(call)); });
}

void SegmentProcessor::Preprocess(std::shared_ptr<Call> call) {
  const SegmentJob& job = call->job;
  Clock* clock = core_->clock();
  if (job.cancelled && job.cancelled->load()) {
    Finish(*call, absl::CancelledError("the client cancelled the request"));
    return;
  }
  if (clock->Now() >= job.deadline) {
    Finish(*call,
           absl::DeadlineExceededError(
               "the request's deadline passed before preprocessing; allow a "
               "longer deadline or send less load"));
    return;
  }
  const absl::Time start = clock->Now();
  absl::StatusOr<cv::Mat> rgb =
      job.raw ? RawToRgb(job.raw_width, job.raw_height, job.raw_format,
                         job.raw_data, options_.max_image_pixels)
              : DecodeImage(job.encoded, options_.max_image_pixels);
  if (!rgb.ok()) {
    Finish(*call, rgb.status());
    return;
  }
  call->image_width = rgb->cols;
  call->image_height = rgb->rows;

  const ServedModel& model = call->ticket->model();
  const PreprocessOptions& preprocess = model.preprocess();
  std::vector<std::unique_ptr<InferenceRequest>> items;
  auto item = std::make_unique<InferenceRequest>();
  item->input.resize(3 * size_t(preprocess.height) * preprocess.width);
  call->plan.regions.push_back(
      segserve::Preprocess(*rgb, preprocess, item->input.data()));
  items.push_back(std::move(item));
  call->preprocess_time = clock->Now() - start;
  model.metrics().preprocess_seconds->Observe(
      absl::ToDoubleSeconds(call->preprocess_time));

  for (auto& planned : items) {
    planned->outputs.confidence = job.with_confidence;
    planned->priority = job.priority;
    planned->deadline = job.deadline;
    planned->cancelled = job.cancelled;
  }
  absl::Status queued = call->ticket->Submit(
      std::move(items), [this, call](std::vector<BatchResult> results) mutable {
        // The request fails with its first failed item.
        for (BatchResult& result : results) {
          if (!result.status.ok()) {
            Finish(*call, std::move(result.status));
            return;
          }
        }
        Postprocess(std::move(call), std::move(results.front()));
      });
  if (!queued.ok()) Finish(*call, queued);
}

void SegmentProcessor::Postprocess(std::shared_ptr<Call> call,
                                   BatchResult batch) {
  Clock* clock = core_->clock();
  const absl::Time start = clock->Now();
  const ServedModel& model = call->ticket->model();
  const v1::ModelConfig& config = model.config();
  SegmentResult result;
  result.model = config.name();
  result.version = model.version();
  result.width = call->image_width;
  result.height = call->image_height;
  result.mask_format = call->job.mask_format;

  const ContentRegion& region = call->plan.regions.front();
  const cv::Mat labels = MapToImageSize(batch.output.labels, region,
                                        call->image_width, call->image_height);
  absl::StatusOr<std::string> mask = EncodeMask(labels, call->job.mask_format);
  if (!mask.ok()) {
    Finish(*call, absl::InternalError(absl::StrCat("encoding the mask failed: ",
                                                   mask.status().message())));
    return;
  }
  result.mask = *std::move(mask);
  if (call->job.with_confidence && !batch.output.confidence.empty()) {
    const cv::Mat confidence = MapToImageSize(
        batch.output.confidence, region, call->image_width, call->image_height);
    result.confidence.assign(reinterpret_cast<const char*>(confidence.data),
                             confidence.total());
  }
  result.class_stats = CountClasses(labels, config);
  result.queue_time = batch.queue_time;
  result.preprocess_time = call->preprocess_time;
  result.inference_time = batch.inference_time;
  result.batch_size = batch.batch_size;
  result.postprocess_time = clock->Now() - start;
  call->ticket->SetTimes({result.queue_time, result.preprocess_time,
                          result.inference_time, result.postprocess_time});
  model.metrics().postprocess_seconds->Observe(
      absl::ToDoubleSeconds(result.postprocess_time));
  Finish(*call, std::move(result));
}

void SegmentProcessor::Finish(Call& call,
                              absl::StatusOr<SegmentResult> result) {
  call.ticket->Finish(result.status().code());
  call.done(std::move(result));
  // Leaves the in-flight count now, and on a pool thread: the last
  // reference to the call may be dropped elsewhere.
  call.ticket.reset();
}

}  // namespace segserve
