#ifndef SEGSERVE_MODEL_MODEL_INPUT_H_
#define SEGSERVE_MODEL_MODEL_INPUT_H_

#include <cstdint>

namespace segserve {

// The part of a model input that holds the image: all of it for STRETCH and
// for a full SLIDE tile, the centred aspect-preserving box for LETTERBOX, the
// top-left part for a SLIDE tile shorter than the crop.
struct ContentRegion {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;

  bool Covers(int input_width, int input_height) const {
    return x == 0 && y == 0 && width == input_width && height == input_height;
  }
};

// One batch item as it reaches a model: the image already resized to the
// model's input size, 8-bit RGB in rows (HWC, input height x input width x
// 3), of which `region` holds the image. The model normalizes it on its own
// device, so a quarter of the bytes of float32 cross to a GPU; every value
// of the normalized input outside `region` is zero.
struct ModelInput {
  const uint8_t* rgb = nullptr;
  ContentRegion region;
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_MODEL_INPUT_H_
