// Labelled images for training and evaluation: the synthetic scenes by seed,
// or a folder of the user's own data. Torch-free.
//
// Folder format (train/README.md):
//   DIR/classes.txt        one class name per line; line i is class id i
//   DIR/images/STEM.EXT    PNG, JPEG, BMP, WebP or TIFF images
//   DIR/masks/STEM.png     8- or 16-bit single-channel PNG of class ids,
//                          same size as the image; 255 (8-bit) is "ignore"
#ifndef SEGSERVE_DATASETS_DATASET_H_
#define SEGSERVE_DATASETS_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

struct LabeledImage {
  std::string name;  // The scene seed or the file stem, for messages.
  cv::Mat rgb;       // CV_8UC3 RGB.
  cv::Mat labels;    // CV_8U class ids (kIgnoreLabel: no label).
};

// Thread-safe after construction: Get() may run on any thread.
class LabeledImageSource {
 public:
  virtual ~LabeledImageSource() = default;
  // Number of distinct images; 0 for an unbounded source (the scenes).
  virtual int64_t size() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  // Image `index` (taken modulo size() when bounded).
  virtual absl::StatusOr<LabeledImage> Get(int64_t index) const = 0;
};

// Scene seed_base + index, its image passed through the encoding its seed
// names (JPEG artefacts included), exactly as a client would send it. A
// share of the scenes, chosen by seed, is drawn as the noisy variant
// (SceneOptions::noise_over_objects).
std::unique_ptr<LabeledImageSource> MakeSceneSource(
    uint64_t seed_base, double noise_over_objects_share = 0);

// Whether the scene source draws scene `seed` as the noisy variant at this
// share: a fixed function of the seed.
bool DrawsNoiseOverObjects(uint64_t seed, double share);

// Opens and checks a folder dataset: every image has a mask with the same
// stem and size, every mask value is a class id of classes.txt (or 255),
// and nothing is unreadable. INVALID_ARGUMENT names the first bad file and
// says what is wrong and what is allowed; NOT_FOUND for a missing folder or
// classes.txt.
absl::StatusOr<std::unique_ptr<LabeledImageSource>> OpenFolderDataset(
    const std::string& dir);

}  // namespace segserve

#endif  // SEGSERVE_DATASETS_DATASET_H_
