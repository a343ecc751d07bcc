#ifndef SEGSERVE_TOOLS_SEGLOAD_REQUEST_SENDER_H_
#define SEGSERVE_TOOLS_SEGLOAD_REQUEST_SENDER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "segserve/v1/segmentation.pb.h"
#include "tools/segload/load_inputs.h"

namespace segserve {

// How segload sends one of its requests: as segserve.v1 Segment calls, or
// as the Open Inference Protocol's ModelInfer calls carrying the same image
// (answers are turned back into SegmentResponses, without timing, so that
// both are measured alike). Thread-safe.
class RequestSender {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<v1::SegmentResponse>) &&>;

  virtual ~RequestSender() = default;
  virtual absl::StatusOr<v1::SegmentResponse> Send(
      const std::shared_ptr<const v1::SegmentRequest>& request) = 0;
  // `done` runs once, on a gRPC thread; it must not block.
  virtual void SendAsync(std::shared_ptr<const v1::SegmentRequest> request,
                         Done done) = 0;
};

// One encoded image as a BYTES element of the Open Inference Protocol's
// raw form (its length as 4 little-endian bytes, then the bytes), as the
// OIP and HTTP senders send it.
std::string PackBytesElement(const std::string& element);

// Segment calls through `client` (not owned; must outlive the sender).
std::unique_ptr<RequestSender> MakeSegmentSender(Client* client);

// ModelInfer calls on `client`'s channel with `options`' deadline and
// token. Every request sent must be one of `inputs` (converted once, here).
std::unique_ptr<RequestSender> MakeOipSender(
    Client* client, const ClientOptions& options,
    const std::vector<LoadInput>& inputs);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_REQUEST_SENDER_H_
