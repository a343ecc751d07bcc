// The synthetic scenes the default models learn and are checked on: RGB
// images with exact label maps, every detail drawn from one seed
// (docs in train/README.md). Torch-free, so the trainer, the tests, the demo
// and segload all draw the same scene for the same seed.
#ifndef SEGSERVE_DATASETS_SCENE_H_
#define SEGSERVE_DATASETS_SCENE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "opencv2/core/mat.hpp"

namespace segserve {

// Class ids of the scenes.
enum SceneClass : uint8_t {
  kBackground = 0,
  kDisk = 1,
  kRectangle = 2,
  kTriangle = 3,
  kRing = 4,
  kCross = 5,
};
inline constexpr int kNumSceneClasses = 6;

// "background", "disk", ... indexed by class id.
const std::vector<std::string>& SceneClassNames();

struct SceneOptions {
  // The image size; 0 draws each side from the seed, 256..1024.
  int width = 0;
  int height = 0;
  // The noisy variant: the scene's pixel noise goes over the objects too,
  // not only over the background (SCENES.md draws it under them). Same
  // seed, same geometry, colours and noise as the spec scene.
  bool noise_over_objects = false;
  // Above 1: a mosaic of mosaic x mosaic scenes side by side (each of width
  // x height, 512 x 512 when not given), the scenes of seeds seed * n .. seed
  // * n + n - 1 (n = mosaic squared), row-major; stored as PNG. Images far
  // larger than a model's input with objects at the scale it learnt.
  int mosaic = 1;
};

// One drawn object (for tests and the demo's report).
struct SceneObject {
  SceneClass shape = kDisk;
  double center_x = 0;  // Pixels; pixel (x, y) has its centre at x+.5, y+.5.
  double center_y = 0;
  double diameter = 0;  // Circumscribed diameter in pixels.
  double angle = 0;     // Radians.
  cv::Vec3b color;      // RGB.
};

struct Scene {
  uint64_t seed = 0;
  cv::Mat rgb;                       // CV_8UC3, RGB order.
  cv::Mat labels;                    // CV_8U class ids, same size.
  std::vector<SceneObject> objects;  // In drawing order.
  // How the seed says to store the scene: 0 for PNG, else the JPEG
  // quality (70..95).
  int jpeg_quality = 0;
};

// Draws the scene of `seed`. Deterministic for a given seed and options on
// every platform (own random streams, no library distributions).
Scene DrawScene(uint64_t seed, const SceneOptions& options = {});

// The scene's image as the seed says to store it (PNG or JPEG), or as PNG
// when `force_png`.
std::string EncodeScene(const Scene& scene, bool force_png = false);

}  // namespace segserve

#endif  // SEGSERVE_DATASETS_SCENE_H_
