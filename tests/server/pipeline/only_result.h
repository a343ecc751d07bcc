#ifndef SEGSERVE_TESTS_SERVER_PIPELINE_ONLY_RESULT_H_
#define SEGSERVE_TESTS_SERVER_PIPELINE_ONLY_RESULT_H_

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/pipeline/segment_job.h"

namespace segserve {

// The result of a one-image job: its only image's, or the request's error.
inline absl::StatusOr<SegmentResult> OnlyResult(
    absl::StatusOr<std::vector<SegmentResult>> results) {
  if (!results.ok()) return results.status();
  if (results->size() != 1) {
    return absl::InternalError("a one-image job got another count of results");
  }
  return std::move(results->front());
}

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_PIPELINE_ONLY_RESULT_H_
