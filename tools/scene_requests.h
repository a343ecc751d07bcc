#ifndef SEGSERVE_TOOLS_SCENE_REQUESTS_H_
#define SEGSERVE_TOOLS_SCENE_REQUESTS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "datasets/scene.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// A synthetic scene sent through segserve, with the mask that came back.
struct SegmentedScene {
  Scene scene;
  std::string encoded;  // As sent: PNG or JPEG, as the seed says.
  cv::Mat mask;         // At the scene's size (checked).
};

// Draws scene `seed`, sends it encoded to `model` (empty: the server's
// default) and decodes the mask. The scene's seed says PNG or JPEG;
// `jpeg_quality` 1..100 makes every scene a JPEG of that quality. Fails with
// the call's status, or INTERNAL when the mask's size differs from the
// image's.
absl::StatusOr<SegmentedScene> SegmentScene(Client& client,
                                            const std::string& model,
                                            uint64_t seed,
                                            const SceneOptions& options,
                                            int jpeg_quality = 0);

// Sends an encoded image to `model` and decodes the mask it answers.
absl::StatusOr<cv::Mat> SegmentEncoded(Client& client, const std::string& model,
                                       const std::string& encoded,
                                       const std::string& request_id);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SCENE_REQUESTS_H_
