#include "server/pipeline/segment_processor.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/preprocess.h"
#include "model/slide_window.h"

namespace segserve {

// The batch items one image becomes, and where each one's answer goes back
// in the image: the whole image as one item, resized as the model's input
// mode says, or (SLIDE) its overlapping tiles, blended as they come back.
struct ImagePlan {
  std::vector<ContentRegion> regions;  // One per item, in submission order.
  std::vector<SlideTile> tiles;        // SLIDE: one per item.
  std::shared_ptr<SlideBlender> blender;
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
  Admission admission{job.model, job.version, job.deadline};
  if (job.raw) {
    admission.image_width = job.raw_width;
    admission.image_height = job.raw_height;
  } else if (absl::StatusOr<ImageSize> size = PeekImageSize(job.encoded);
             size.ok()) {
    // Errors wait for the decoder, which explains them.
    admission.image_width = size->width;
    admission.image_height = size->height;
  }
  absl::StatusOr<std::unique_ptr<RequestTicket>> ticket =
      core_->Admit(std::move(admission));
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
  absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>> items =
      PlanItems(*rgb, model, call->plan);
  if (!items.ok()) {
    Finish(*call, items.status());
    return;
  }
  call->preprocess_time = clock->Now() - start;
  model.metrics().preprocess_seconds->Observe(
      absl::ToDoubleSeconds(call->preprocess_time));

  const bool slide = call->plan.blender != nullptr;
  for (auto& planned : *items) {
    // A tile's confidence comes from the blended logits, not its own.
    planned->outputs.confidence = job.with_confidence && !slide;
    planned->outputs.logits = slide;
    planned->priority = job.priority;
    planned->deadline = job.deadline;
    planned->cancelled = job.cancelled;
  }
  RequestTicket::ItemDone blend;
  if (slide) {
    // Each tile's logits are summed in as it arrives and then released: a
    // request holds one image of logits, not one per tile.
    blend = [plan = &call->plan, call](size_t index, BatchResult& result) {
      absl::Status added = plan->blender->Add(
          plan->tiles[index], plan->regions[index], result.output.logits);
      result.output = InferenceOutput();
      return added;
    };
  }
  absl::Status queued = call->ticket->Submit(
      *std::move(items),
      [this, call](std::vector<BatchResult> results) mutable {
        // Every failed item carries the request's first failure.
        for (BatchResult& result : results) {
          if (!result.status.ok()) {
            Finish(*call, std::move(result.status));
            return;
          }
        }
        Postprocess(std::move(call), std::move(results));
      },
      std::move(blend));
  if (!queued.ok()) Finish(*call, queued);
}

absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>>
SegmentProcessor::PlanItems(const cv::Mat& rgb, const ServedModel& model,
                            ImagePlan& plan) const {
  const PreprocessOptions& preprocess = model.preprocess();
  const size_t input_floats = 3 * size_t(preprocess.height) * preprocess.width;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  if (preprocess.resize != PreprocessOptions::Resize::kSlide) {
    auto item = std::make_unique<InferenceRequest>();
    item->input.resize(input_floats);
    plan.regions.push_back(
        segserve::Preprocess(rgb, preprocess, item->input.data()));
    items.push_back(std::move(item));
    return items;
  }
  const int limit = MaxSlideTilesPerRequest(
      int(model.config().dynamic_batching().max_queue_size()));
  const int count = CountSlideTiles(rgb.cols, rgb.rows, preprocess);
  if (count > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", rgb.cols, "x", rgb.rows, " image needs ", count, " tiles of ",
        preprocess.crop_width, "x", preprocess.crop_height, " (stride ",
        preprocess.stride_width, "x", preprocess.stride_height, ") and model '",
        model.config().name(), "' takes at most ", limit,
        " per request; send a smaller image"));
  }
  plan.tiles = PlanSlideTiles(rgb.cols, rgb.rows, preprocess);
  plan.blender = std::make_shared<SlideBlender>(
      rgb.cols, rgb.rows, int(model.config().num_classes()));
  for (const SlideTile& tile : plan.tiles) {
    auto item = std::make_unique<InferenceRequest>();
    item->input.resize(input_floats);
    plan.regions.push_back(
        PreprocessTile(rgb, tile, preprocess, item->input.data()));
    items.push_back(std::move(item));
  }
  return items;
}

void SegmentProcessor::Postprocess(std::shared_ptr<Call> call,
                                   std::vector<BatchResult> items) {
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

  const bool with_confidence = call->job.with_confidence;
  cv::Mat labels;
  cv::Mat confidence;
  if (call->plan.blender != nullptr) {
    BlendedMasks blended = call->plan.blender->Finish(with_confidence);
    labels = std::move(blended.labels);
    confidence = std::move(blended.confidence);
  } else {
    const InferenceOutput& output = items.front().output;
    const ContentRegion& region = call->plan.regions.front();
    labels = MapToImageSize(output.labels, region, call->image_width,
                            call->image_height);
    if (with_confidence && !output.confidence.empty()) {
      confidence = MapToImageSize(output.confidence, region, call->image_width,
                                  call->image_height);
    }
  }
  absl::StatusOr<std::string> mask = EncodeMask(labels, call->job.mask_format);
  if (!mask.ok()) {
    Finish(*call, absl::InternalError(absl::StrCat("encoding the mask failed: ",
                                                   mask.status().message())));
    return;
  }
  result.mask = *std::move(mask);
  if (!confidence.empty()) {
    result.confidence.assign(reinterpret_cast<const char*>(confidence.data),
                             confidence.total());
  }
  result.class_stats = CountClasses(labels, config);
  // The items were queued together: the queue time runs until the first
  // started, the inference time from then until the last finished.
  absl::Duration first_start = absl::InfiniteDuration();
  absl::Duration last_end = absl::ZeroDuration();
  for (const BatchResult& item : items) {
    first_start = std::min(first_start, item.queue_time);
    last_end = std::max(last_end, item.queue_time + item.inference_time);
    result.batch_size = std::max(result.batch_size, item.batch_size);
  }
  result.queue_time = first_start;
  result.preprocess_time = call->preprocess_time;
  result.inference_time = last_end - first_start;
  result.tiles = int(items.size());
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
