#include "tools/scene_requests.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/request_util.h"
#include "common/status_macros.h"

namespace segserve {

absl::StatusOr<SegmentedScene> SegmentScene(Client& client,
                                            const std::string& model,
                                            uint64_t seed,
                                            const SceneOptions& options) {
  SegmentedScene result;
  result.scene = DrawScene(seed, options);
  result.encoded = EncodeScene(result.scene);
  v1::SegmentRequest request = MakeEncodedRequest(result.encoded);
  request.set_model(model);
  request.set_mask_encoding(v1::RLE);
  request.set_request_id(absl::StrCat("scene-", seed));
  absl::StatusOr<v1::SegmentResponse> response = client.Segment(request);
  if (!response.ok()) {
    return absl::Status(
        response.status().code(),
        absl::StrCat("scene ", seed, ": ", response.status().message()));
  }
  SEGSERVE_ASSIGN_OR_RETURN(cv::Mat mask, DecodeMaskToMat(response->mask()));
  if (mask.size() != result.scene.labels.size()) {
    return absl::InternalError(
        absl::StrCat("scene ", seed, ": the mask is ", mask.cols, "x",
                     mask.rows, " but the image is ", result.scene.labels.cols,
                     "x", result.scene.labels.rows));
  }
  result.mask = std::move(mask);
  return result;
}

}  // namespace segserve
