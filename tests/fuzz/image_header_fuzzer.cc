// The image header checks alone (PeekImageSize), on any bytes: the pixel
// limit is read from these headers before anything is decoded, so they must
// never crash, and a size they report must be positive.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "common/image_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<segserve::ImageSize> peeked = segserve::PeekImageSize(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (peeked.ok() && (peeked->width <= 0 || peeked->height <= 0)) {
    std::abort();
  }
  return 0;
}
