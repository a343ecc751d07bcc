#ifndef SEGSERVE_SERVER_API_SEGMENT_REQUEST_H_
#define SEGSERVE_SERVER_API_SEGMENT_REQUEST_H_

#include "absl/status/statusor.h"
#include "segserve/v1/segmentation.pb.h"
#include "server/pipeline/segment_job.h"

namespace segserve {

// A SegmentRequest in the project's own types, or INVALID_ARGUMENT saying
// what is wrong and what is allowed. Checks what the message alone tells
// (an image is set, raw sizes and formats, the mask encoding); the image's
// bytes are checked when they are decoded. The job's string views point
// into `request`, which must outlive it. The deadline and cancellation are
// the call's (ServingApi::Infer sets them).
absl::StatusOr<SegmentJob> ToSegmentJob(const v1::SegmentRequest& request);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_SEGMENT_REQUEST_H_
