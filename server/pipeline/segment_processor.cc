#include "server/pipeline/segment_processor.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
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

// One image of a call: its plan, its items until they are queued, and its
// share of the gathered results.
struct SegmentProcessor::Image {
  ImagePlan plan;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  size_t first_item = 0;  // Index of its first item in the request's.
  int width = 0;
  int height = 0;
  absl::Status status;  // Of its decoding and planning.
  absl::Duration preprocess_time;
};

struct SegmentProcessor::Call {
  SegmentJob job;
  Done done;
  std::unique_ptr<RequestTicket> ticket;
  std::vector<Image> images;
  std::atomic<size_t> preprocessing{0};  // Images still being decoded.
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

// The batch items an image of `size` becomes on `model` (0x0: unknown, one
// item). An image of more tiles than a request may have counts as the most
// it may have: the pipeline refuses it with the count, not admission as a
// deadline it would miss.
int CountItems(const ImageSize& size, const ServedModel& model) {
  const PreprocessOptions& preprocess = model.preprocess();
  if (preprocess.resize != PreprocessOptions::Resize::kSlide ||
      size.width <= 0 || size.height <= 0) {
    return 1;
  }
  return std::min(CountSlideTiles(size.width, size.height, preprocess),
                  MaxSlideTilesPerRequest(
                      int(model.config().dynamic_batching().max_queue_size())));
}

// The image's pixels: raw ones converted, encoded ones decoded, a JPEG at a
// reduced scale when the model's input allows it (never for SLIDE, which
// tiles the image at its own resolution).
absl::StatusOr<DecodedImage> Decode(const ImageInput& input,
                                    const PreprocessOptions& preprocess,
                                    const SegmentProcessor::Options& options) {
  if (input.raw) {
    SEGSERVE_ASSIGN_OR_RETURN(
        cv::Mat rgb,
        RawToRgb(input.raw_width, input.raw_height, input.raw_format,
                 input.raw_data, options.max_image_pixels));
    const ImageSize size{rgb.cols, rgb.rows};
    return DecodedImage{std::move(rgb), size, 1};
  }
  const bool reducible = options.reduced_jpeg_decode &&
                         preprocess.resize != PreprocessOptions::Resize::kSlide;
  // At least the model's input on both sides: for LETTERBOX that is more
  // than the image's box needs along one side, which keeps the choice
  // simple.
  const ImageSize at_least =
      reducible ? ImageSize{preprocess.width, preprocess.height}
                : ImageSize{std::numeric_limits<int>::max(),
                            std::numeric_limits<int>::max()};
  return DecodeImageAtLeast(input.encoded, options.max_image_pixels, at_least);
}

int MaxImagesPerRequest(const ServedModel& model) {
  return std::max(1, int(model.config().max_batch_size()));
}

}  // namespace

SegmentProcessor::SegmentProcessor(Options options, InferenceCore* core)
    : options_(options), core_(core) {}

void SegmentProcessor::Process(SegmentJob job, Done done) {
  if (job.images.empty()) {
    done(absl::InvalidArgumentError(
        "the request holds no image; send at least one"));
    return;
  }
  // Sizes known before decoding; errors wait for the decoder, which
  // explains them.
  std::vector<ImageSize> sizes;
  for (const ImageInput& image : job.images) {
    ImageSize size{0, 0};
    if (image.raw) {
      size = {image.raw_width, image.raw_height};
    } else if (absl::StatusOr<ImageSize> peeked = PeekImageSize(image.encoded);
               peeked.ok()) {
      size = *peeked;
    }
    sizes.push_back(size);
  }
  Admission admission{job.model, job.version, job.deadline};
  admission.count_items = [&sizes](const ServedModel& model) {
    int items = 0;
    for (const ImageSize& size : sizes) items += CountItems(size, model);
    return items;
  };
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
  const ServedModel& model = call->ticket->model();
  const size_t count = call->job.images.size();
  if (int(count) > MaxImagesPerRequest(model)) {
    Finish(*call, absl::InvalidArgumentError(absl::StrCat(
                      "the request holds ", count, " images; model '",
                      model.config().name(), "' takes at most ",
                      MaxImagesPerRequest(model),
                      " per request (its max_batch_size); send fewer")));
    return;
  }
  call->images.resize(count);
  call->preprocessing.store(count);
  // Each image decodes on a pool thread of its own; the last one done
  // queues them all.
  for (size_t i = 0; i < count; ++i) {
    core_->pool()->Schedule(
        [this, call, i]() mutable { Preprocess(std::move(call), i); });
  }
}

void SegmentProcessor::Preprocess(std::shared_ptr<Call> call, size_t index) {
  const SegmentJob& job = call->job;
  const ImageInput& input = job.images[index];
  Image& image = call->images[index];
  Clock* clock = core_->clock();
  const absl::Time start = clock->Now();
  if (job.cancelled && job.cancelled->load()) {
    image.status = absl::CancelledError("the client cancelled the request");
  } else if (start >= job.deadline) {
    image.status = absl::DeadlineExceededError(
        "the request's deadline passed before preprocessing; allow a "
        "longer deadline or send less load");
  } else {
    absl::StatusOr<DecodedImage> decoded =
        Decode(input, call->ticket->model().preprocess(), options_);
    if (decoded.ok()) {
      image.width = decoded->size.width;
      image.height = decoded->size.height;
      absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>> items =
          PlanItems(decoded->rgb, decoded->size, call->ticket->model(),
                    image.plan);
      if (items.ok()) {
        image.items = *std::move(items);
      } else {
        image.status = items.status();
      }
    } else {
      image.status = decoded.status();
    }
    image.preprocess_time = clock->Now() - start;
    if (image.status.ok()) {
      call->ticket->model().metrics().preprocess_seconds->Observe(
          absl::ToDoubleSeconds(image.preprocess_time));
    }
  }
  // The decrement publishes this image's fields to the thread that takes
  // the last one.
  if (call->preprocessing.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    Submit(std::move(call));
  }
}

void SegmentProcessor::Submit(std::shared_ptr<Call> call) {
  const SegmentJob& job = call->job;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  // Which image each item belongs to, for the tiles' blending.
  std::vector<size_t> owner;
  for (size_t i = 0; i < call->images.size(); ++i) {
    Image& image = call->images[i];
    if (!image.status.ok()) {
      // The first failing image, in request order, is the request's error.
      Finish(*call, image.status);
      return;
    }
    image.first_item = items.size();
    const bool slide = image.plan.blender != nullptr;
    for (auto& planned : image.items) {
      // A tile's confidence comes from the blended logits, not its own.
      planned->outputs.confidence = job.with_confidence && !slide;
      planned->outputs.logits = slide;
      planned->priority = job.priority;
      planned->deadline = job.deadline;
      planned->cancelled = job.cancelled;
      items.push_back(std::move(planned));
      owner.push_back(i);
    }
    image.items.clear();
  }
  RequestTicket::ItemDone blend;
  if (std::any_of(call->images.begin(), call->images.end(),
                  [](const Image& image) { return image.plan.blender; })) {
    // Each tile's logits are summed in as it arrives and then released: a
    // request holds one image of logits, not one per tile.
    blend = [call, owner = std::move(owner)](size_t index,
                                             BatchResult& result) {
      Image& image = call->images[owner[index]];
      if (image.plan.blender == nullptr) return absl::OkStatus();
      const size_t tile = index - image.first_item;
      absl::Status added = image.plan.blender->Add(image.plan.tiles[tile],
                                                   image.plan.regions[tile],
                                                   result.output.logits);
      result.output = InferenceOutput();
      return added;
    };
  }
  absl::Status queued = call->ticket->Submit(
      std::move(items),
      [this, call](std::vector<BatchResult> results) mutable {
        Gathered(std::move(call), std::move(results));
      },
      std::move(blend));
  if (!queued.ok()) Finish(*call, queued);
}

void SegmentProcessor::Gathered(std::shared_ptr<Call> call,
                                std::vector<BatchResult> results) {
  // Every failed item carries the request's first failure.
  for (BatchResult& result : results) {
    if (!result.status.ok()) {
      Finish(*call, std::move(result.status));
      return;
    }
  }
  std::vector<SegmentResult> answers;
  for (size_t i = 0; i < call->images.size(); ++i) {
    Image& image = call->images[i];
    const size_t end = i + 1 < call->images.size()
                           ? call->images[i + 1].first_item
                           : results.size();
    absl::StatusOr<SegmentResult> answer = Postprocess(
        *call, image,
        std::vector<BatchResult>(
            std::make_move_iterator(results.begin() + image.first_item),
            std::make_move_iterator(results.begin() + end)));
    if (!answer.ok()) {
      Finish(*call, answer.status());
      return;
    }
    answers.push_back(*std::move(answer));
  }
  // The request's items were queued together: its queue time runs until
  // the first started, its inference time until the last ended.
  RequestTimes times;
  times.queue = absl::InfiniteDuration();
  absl::Duration last_end = absl::ZeroDuration();
  for (const SegmentResult& answer : answers) {
    times.queue = std::min(times.queue, answer.queue_time);
    last_end = std::max(last_end, answer.queue_time + answer.inference_time);
    times.compute_input += answer.preprocess_time;
    times.compute_output += answer.postprocess_time;
  }
  times.compute_infer = last_end - times.queue;
  call->ticket->SetTimes(times);
  Finish(*call, std::move(answers));
}

absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>>
SegmentProcessor::PlanItems(const cv::Mat& rgb, const ImageSize& image,
                            const ServedModel& model, ImagePlan& plan) const {
  const PreprocessOptions& preprocess = model.preprocess();
  const size_t input_bytes = 3 * size_t(preprocess.height) * preprocess.width;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  if (preprocess.resize != PreprocessOptions::Resize::kSlide) {
    auto item = std::make_unique<InferenceRequest>();
    item->input.resize(input_bytes);
    // Placed by the image's own size: a reduced decode keeps its aspect
    // only to within a pixel.
    item->region = PlaceImage(image.width, image.height, preprocess);
    ResizeInto(rgb, item->region, preprocess.width, preprocess.height,
               item->input.data());
    plan.regions.push_back(item->region);
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
    item->input.resize(input_bytes);
    item->region = PreprocessTile(rgb, tile, preprocess, item->input.data());
    plan.regions.push_back(item->region);
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<SegmentResult> SegmentProcessor::Postprocess(
    Call& call, Image& image, std::vector<BatchResult> items) {
  Clock* clock = core_->clock();
  const absl::Time start = clock->Now();
  const ServedModel& model = call.ticket->model();
  const v1::ModelConfig& config = model.config();
  SegmentResult result;
  result.model = config.name();
  result.version = model.version();
  result.num_classes = int(config.num_classes());
  result.width = image.width;
  result.height = image.height;
  result.mask_format = call.job.mask_format;

  const bool with_confidence = call.job.with_confidence;
  cv::Mat labels;
  cv::Mat confidence;
  if (image.plan.blender != nullptr) {
    BlendedMasks blended = image.plan.blender->Finish(with_confidence);
    labels = std::move(blended.labels);
    confidence = std::move(blended.confidence);
  } else {
    const InferenceOutput& output = items.front().output;
    const ContentRegion& region = image.plan.regions.front();
    labels = MapToImageSize(output.labels, region, image.width, image.height);
    if (with_confidence && !output.confidence.empty()) {
      confidence =
          MapToImageSize(output.confidence, region, image.width, image.height);
    }
  }
  absl::StatusOr<std::string> mask = EncodeMask(labels, call.job.mask_format);
  if (!mask.ok()) {
    return absl::InternalError(
        absl::StrCat("encoding the mask failed: ", mask.status().message()));
  }
  result.mask = *std::move(mask);
  if (!confidence.empty()) {
    result.confidence.assign(reinterpret_cast<const char*>(confidence.data),
                             confidence.total());
  }
  result.class_stats = CountClasses(labels, config);
  // The image's items were queued together: the queue time runs until the
  // first started, the inference time from then until the last finished.
  absl::Duration first_start = absl::InfiniteDuration();
  absl::Duration last_end = absl::ZeroDuration();
  for (const BatchResult& item : items) {
    first_start = std::min(first_start, item.queue_time);
    last_end = std::max(last_end, item.queue_time + item.inference_time);
    result.batch_size = std::max(result.batch_size, item.batch_size);
  }
  result.queue_time = first_start;
  result.preprocess_time = image.preprocess_time;
  result.inference_time = last_end - first_start;
  result.tiles = int(items.size());
  result.postprocess_time = clock->Now() - start;
  model.metrics().postprocess_seconds->Observe(
      absl::ToDoubleSeconds(result.postprocess_time));
  return result;
}

void SegmentProcessor::Finish(
    Call& call, absl::StatusOr<std::vector<SegmentResult>> result) {
  call.ticket->Finish(result.status().code());
  call.done(std::move(result));
  // Leaves the in-flight count now, and on a pool thread: the last
  // reference to the call may be dropped elsewhere.
  call.ticket.reset();
}

}  // namespace segserve
