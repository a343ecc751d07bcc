#ifndef SEGSERVE_MODEL_SLIDE_WINDOW_H_
#define SEGSERVE_MODEL_SLIDE_WINDOW_H_

// Sliding-window inference (input resize SLIDE), as mmsegmentation's
// slide_inference does it: overlapping crops of the image at its own
// resolution, each run as one batch item, their logits summed at full
// resolution and divided by how many tiles cover each pixel.

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/preprocess_options.h"
#include "model/preprocess.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// One tile, in image pixels. Smaller than the crop only where the image is.
struct SlideTile {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
};

// The most tiles one request may become: the model's max_queue_size (more
// could never be queued together; 0 is unbounded) or 1024, which bounds the
// inputs a request holds.
inline constexpr int kMaxSlideTiles = 1024;
inline int MaxSlideTilesPerRequest(int max_queue_size) {
  return max_queue_size > 0 && max_queue_size < kMaxSlideTiles ? max_queue_size
                                                               : kMaxSlideTiles;
}

// mmsegmentation's grid: per axis max(size - crop + stride - 1, 0) / stride
// + 1 positions every stride pixels, each tile moved back to end at the
// image's edge where it would cross it. Row-major order.
std::vector<SlideTile> PlanSlideTiles(int image_width, int image_height,
                                      const PreprocessOptions& options);
// The size of that plan, without building it.
int CountSlideTiles(int image_width, int image_height,
                    const PreprocessOptions& options);

// Writes one tile of an 8-bit RGB image as the model's input (HWC bytes,
// width x height x 3, as ResizeInto writes them): scaled by input size over
// crop size, at the input's top-left corner, the rest zero. Returns where the
// tile lies in the input.
ContentRegion PreprocessTile(const cv::Mat& rgb, const SlideTile& tile,
                             const PreprocessOptions& options, uint8_t* out);

// The labels (and confidence) of an image from its tiles' logits.
struct BlendedMasks {
  cv::Mat labels;      // CV_8UC1 (<= 256 classes) or CV_16UC1.
  cv::Mat confidence;  // CV_8UC1 round(255 * winning probability), or empty.
};

// Sums tiles' logits at the image's resolution and takes the labels of their
// average. Memory: num_classes x height x width floats. Thread-safe: tiles
// may be added from several threads, in any order.
class SlideBlender {
 public:
  SlideBlender(int image_width, int image_height, int num_classes);

  // Adds one tile's logits: CV_32F with dims {num_classes, input height,
  // input width}, of which `region` (PreprocessTile's answer) holds the
  // tile; resized bilinearly (align_corners false) to the tile's size when
  // the sizes differ. Fails, adding nothing, when the shapes do not fit.
  absl::Status Add(const SlideTile& tile, const ContentRegion& region,
                   const cv::Mat& logits);

  // Labels are the argmax of the averaged logits (the lowest class id on a
  // tie), at the image's size. Call once every tile is in; pixels no tile
  // covered are class 0.
  BlendedMasks Finish(bool with_confidence);

  // The averaged logits, CV_32F with dims {num_classes, height, width}.
  cv::Mat AveragedLogits();

 private:
  void AverageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int width_;
  const int height_;
  const int num_classes_;
  absl::Mutex mu_;
  cv::Mat sum_ ABSL_GUARDED_BY(mu_);    // {classes, height, width} CV_32F.
  cv::Mat count_ ABSL_GUARDED_BY(mu_);  // height x width CV_16U tiles.
  bool averaged_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SLIDE_WINDOW_H_
