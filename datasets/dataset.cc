#include "datasets/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/image_codec.h"
#include "common/status_macros.h"
#include "datasets/scene.h"
#include "opencv2/imgcodecs.hpp"

namespace segserve {
namespace {

namespace fs = std::filesystem;

class SceneSource : public LabeledImageSource {
 public:
  SceneSource(uint64_t seed_base, double noise_over_objects_share)
      : seed_base_(seed_base),
        noise_over_objects_share_(noise_over_objects_share) {}
  int64_t size() const override { return 0; }
  const std::vector<std::string>& class_names() const override {
    return SceneClassNames();
  }
  absl::StatusOr<LabeledImage> Get(int64_t index) const override {
    const uint64_t seed = seed_base_ + static_cast<uint64_t>(index);
    SceneOptions options;
    options.noise_over_objects =
        DrawsNoiseOverObjects(seed, noise_over_objects_share_);
    Scene scene = DrawScene(seed, options);
    LabeledImage image;
    image.name = absl::StrCat("scene ", scene.seed,
                              options.noise_over_objects ? " (noisy)" : "");
    if (scene.jpeg_quality > 0) {
      SEGSERVE_ASSIGN_OR_RETURN(image.rgb, DecodeImage(EncodeScene(scene), 0));
    } else {
      image.rgb = std::move(scene.rgb);
    }
    image.labels = std::move(scene.labels);
    return image;
  }

 private:
  uint64_t seed_base_;
  double noise_over_objects_share_;
};

const std::vector<std::string>& ImageExtensions() {
  static const auto* const kExtensions = new std::vector<std::string>{
      ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"};
  return *kExtensions;
}

struct Pair {
  std::string stem;
  fs::path image;
  fs::path mask;
};

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot be read"));
  }
  return std::string(std::istreambuf_iterator<char>(file), {});
}

absl::StatusOr<cv::Mat> ReadMask(const fs::path& path) {
  SEGSERVE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U, bytes.data());
  cv::Mat mask = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  if (mask.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": not a decodable image; masks are PNGs of class ids"));
  }
  if (mask.channels() != 1 ||
      (mask.depth() != CV_8U && mask.depth() != CV_16U)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": mask has ", mask.channels(), " channel(s) of depth ",
        mask.depth(), "; allowed: one channel of 8- or 16-bit class ids"));
  }
  return mask;
}

class FolderDataset : public LabeledImageSource {
 public:
  FolderDataset(std::vector<std::string> class_names, std::vector<Pair> pairs)
      : class_names_(std::move(class_names)), pairs_(std::move(pairs)) {}

  int64_t size() const override { return static_cast<int64_t>(pairs_.size()); }
  const std::vector<std::string>& class_names() const override {
    return class_names_;
  }

  absl::StatusOr<LabeledImage> Get(int64_t index) const override {
    const Pair& pair = pairs_[static_cast<size_t>(index % size())];
    SEGSERVE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(pair.image));
    absl::StatusOr<cv::Mat> rgb = DecodeImage(bytes, 0);
    if (!rgb.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(pair.image.string(), ": ", rgb.status().message()));
    }
    SEGSERVE_ASSIGN_OR_RETURN(cv::Mat mask, ReadMask(pair.mask));
    if (mask.size() != rgb->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          pair.mask.string(), ": mask is ", mask.cols, "x", mask.rows,
          " but its image ", pair.image.filename().string(), " is ", rgb->cols,
          "x", rgb->rows, "; a mask must have its image's size"));
    }
    double max_value = 0;
    cv::Mat valid = mask != 255;
    if (mask.depth() == CV_16U) valid = mask != 65535;
    cv::minMaxLoc(mask, nullptr, &max_value, nullptr, nullptr, valid);
    if (cv::countNonZero(valid) > 0 &&
        max_value >= static_cast<double>(class_names_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          pair.mask.string(), ": class id ", max_value,
          " is out of range; classes.txt names ", class_names_.size(),
          " classes, so ids must be 0..", class_names_.size() - 1,
          " (or 255 for unlabelled pixels)"));
    }
    LabeledImage image;
    image.name = pair.stem;
    image.rgb = *std::move(rgb);
    if (mask.depth() == CV_16U) {
      cv::Mat ids;
      mask.convertTo(ids, CV_8U);  // Ids < classes <= 255 here.
      ids.setTo(255, ~valid);
      image.labels = ids;
    } else {
      image.labels = std::move(mask);
    }
    return image;
  }

 private:
  std::vector<std::string> class_names_;
  std::vector<Pair> pairs_;
};

bool IsImageFile(const fs::path& path) {
  const std::string ext = absl::AsciiStrToLower(path.extension().string());
  const auto& all = ImageExtensions();
  return std::find(all.begin(), all.end(), ext) != all.end();
}

}  // namespace

bool DrawsNoiseOverObjects(uint64_t seed, double share) {
  if (share <= 0) return false;
  // A splitmix64 step: seeds next to each other land far apart.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 < share;
}

std::unique_ptr<LabeledImageSource> MakeSceneSource(
    uint64_t seed_base, double noise_over_objects_share) {
  return std::make_unique<SceneSource>(seed_base, noise_over_objects_share);
}

absl::StatusOr<std::unique_ptr<LabeledImageSource>> OpenFolderDataset(
    const std::string& dir) {
  const fs::path root(dir);
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    return absl::NotFoundError(absl::StrCat(
        dir,
        ": no such dataset folder; expected classes.txt, images/ and "
        "masks/ inside"));
  }
  std::ifstream classes_file(root / "classes.txt");
  if (!classes_file) {
    return absl::NotFoundError(absl::StrCat(
        (root / "classes.txt").string(),
        ": missing; it names one class per line (line i is class id i)"));
  }
  std::vector<std::string> class_names;
  for (std::string line; std::getline(classes_file, line);) {
    line = std::string(absl::StripAsciiWhitespace(line));
    if (!line.empty()) class_names.push_back(line);
  }
  if (class_names.empty() || class_names.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat((root / "classes.txt").string(), ": names ",
                     class_names.size(), " classes; allowed: 1..255"));
  }
  for (const char* sub : {"images", "masks"}) {
    if (!fs::is_directory(root / sub, error)) {
      return absl::NotFoundError(
          absl::StrCat((root / sub).string(),
                       ": missing folder; a dataset has images/ "
                       "and masks/ with the same file stems"));
    }
  }
  std::map<std::string, fs::path> masks;
  for (const auto& entry : fs::directory_iterator(root / "masks")) {
    if (!entry.is_regular_file()) continue;
    masks[entry.path().stem().string()] = entry.path();
  }
  std::vector<Pair> pairs;
  for (const auto& entry : fs::directory_iterator(root / "images")) {
    if (!entry.is_regular_file()) continue;
    const fs::path& image = entry.path();
    if (!IsImageFile(image)) {
      return absl::InvalidArgumentError(absl::StrCat(
          image.string(), ": not an image file; allowed extensions: ",
          absl::StrJoin(ImageExtensions(), " ")));
    }
    const std::string stem = image.stem().string();
    auto mask = masks.find(stem);
    if (mask == masks.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(image.string(), ": has no mask; expected ",
                       (root / "masks" / (stem + ".png")).string()));
    }
    pairs.push_back(Pair{stem, image, mask->second});
    masks.erase(mask);
  }
  if (!masks.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(masks.begin()->second.string(),
                     ": mask without an image of the same stem in images/"));
  }
  if (pairs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat((root / "images").string(), ": holds no images"));
  }
  std::sort(pairs.begin(), pairs.end(),
            [](const Pair& a, const Pair& b) { return a.stem < b.stem; });
  auto dataset =
      std::make_unique<FolderDataset>(std::move(class_names), std::move(pairs));
  // Check every pair now, so a bad file fails the run before training.
  for (int64_t i = 0; i < dataset->size(); ++i) {
    SEGSERVE_RETURN_IF_ERROR(dataset->Get(i).status());
  }
  return dataset;
}

}  // namespace segserve
