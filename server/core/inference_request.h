#ifndef SEGSERVE_SERVER_CORE_INFERENCE_REQUEST_H_
#define SEGSERVE_SERVER_CORE_INFERENCE_REQUEST_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/segmentation_model.h"

namespace segserve {

// Set by the RPC layer when the client cancels; read by the batcher so that
// cancelled requests are dropped before inference.
using CancelFlag = std::shared_ptr<std::atomic<bool>>;

// What the model instance hands back for one request.
struct BatchResult {
  absl::Status status;     // OK, or why the request was not run.
  InferenceOutput output;  // Valid when status is OK.
  absl::Duration queue_time;
  absl::Duration inference_time;  // Of the whole batch.
  int batch_size = 0;
};

// An allocator whose resize() leaves new bytes uninitialized: an input
// buffer is written whole by the preprocessing (ResizeInto zeroes what the
// image does not cover), so zero-filling 768 KiB first was wasted work on
// every request.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// One preprocessed image waiting in a model's queue. Owned by the batcher
// while queued, then by the instance that runs it.
struct InferenceRequest {
  // The image resized to the model's input size: H x W x 3 bytes (RGB),
  // of which `region` holds the image (model/model_input.h).
  std::vector<uint8_t, UninitializedAllocator<uint8_t>> input;
  ContentRegion region;
  OutputKinds outputs;    // Besides the labels.
  uint32_t priority = 0;  // 0 is served first.
  absl::Time enqueue_time;
  absl::Time deadline = absl::InfiniteFuture();
  CancelFlag cancelled;  // May be null.
  // Shared by the items of one request and set when one of them fails, so
  // that its other items (tiles) are dropped instead of run. May be null.
  CancelFlag abandoned;
  // Called exactly once, from an instance thread or from the batcher.
  absl::AnyInvocable<void(BatchResult)> done;

  bool IsAbandoned() const { return abandoned && abandoned->load(); }
  bool IsCancelled() const {
    return (cancelled && cancelled->load()) || IsAbandoned();
  }
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_INFERENCE_REQUEST_H_
