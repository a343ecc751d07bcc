#ifndef SEGSERVE_SERVER_API_REST_SEGMENT_H_
#define SEGSERVE_SERVER_API_REST_SEGMENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/http/http_server.h"
#include "server/pipeline/segment_job.h"

namespace segserve {

// The image endpoint for people with curl:
//   POST /v2/models/{model}[/versions/{version}]/segment
// The body is the image: an encoded file (Content-Type image/jpeg,
// image/png, image/webp, image/bmp or image/tiff) or raw pixels
// (application/octet-stream with ?width=W&height=H[&format=rgb8|bgr8|gray8]).
// Query: mask_encoding=png|raw|rle (png), confidence=true|false (false),
// priority=N (0, the highest).
struct RestSegmentCall {
  SegmentJob job;  // Its views point into the request's body.
  // Answer with the mask's PNG as the body (Accept: image/png) rather than
  // JSON.
  bool png_body = false;
};

// The request as a job for `model` and `version`; INVALID_ARGUMENT (and
// FAILED_PRECONDITION for an Accept it cannot answer) saying what is wrong
// and what is allowed.
// `request` must outlive the call.
absl::StatusOr<RestSegmentCall> ToRestSegmentCall(const HttpRequest& request,
                                                  const std::string& model,
                                                  const std::string& version);

// The answer: the PNG alone (model and version in the Segserve-Model and
// Segserve-Model-Version headers), or JSON with the mask (base64, in the
// encoding asked), the confidence (base64 row-major uint8, when asked), the
// classes found with their pixels and share, and the timing.
HttpResponse ToRestSegmentResponse(const SegmentResult& result, bool png_body);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_REST_SEGMENT_H_
