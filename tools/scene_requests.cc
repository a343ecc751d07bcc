#include "tools/scene_requests.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/request_util.h"
#include "common/status_macros.h"

namespace segserve {

absl::StatusOr<cv::Mat> SegmentEncoded(Client& client, const std::string& model,
                                       const std::string& encoded,
                                       const std::string& request_id) {
  v1::SegmentRequest request = MakeEncodedRequest(encoded);
  request.set_model(model);
  request.set_mask_encoding(v1::RLE);
  request.set_request_id(request_id);
  absl::StatusOr<v1::SegmentResponse> response = client.Segment(request);
  if (!response.ok()) {
    return absl::Status(
        response.status().code(),
        absl::StrCat(request_id, ": ", response.status().message()));
  }
  return DecodeMaskToMat(response->mask());
}

absl::StatusOr<SegmentedScene> SegmentScene(Client& client,
                                            const std::string& model,
                                            uint64_t seed,
                                            const SceneOptions& options,
                                            int jpeg_quality) {
  SegmentedScene result;
  result.scene = DrawScene(seed, options);
  if (jpeg_quality > 0) result.scene.jpeg_quality = jpeg_quality;
  result.encoded = EncodeScene(result.scene);
  SEGSERVE_ASSIGN_OR_RETURN(cv::Mat mask,
                            SegmentEncoded(client, model, result.encoded,
                                           absl::StrCat("scene-", seed)));
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
