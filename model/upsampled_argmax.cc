#include "model/upsampled_argmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace segserve {
namespace {

// The hot loops get an AVX2 copy chosen at run time (GCC's function
// multiversioning); the baseline build targets x86-64 without it.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SEGSERVE_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SEGSERVE_VECTOR_CLONES
#endif

// One output coordinate's two source taps and weights, computed as
// ATen's upsample_bilinear2d does for align_corners false without a scale
// factor (area_pixel_compute_source_index, compute_source_index_and_lambda).
struct Tap {
  int64_t first = 0;
  int64_t second = 0;
  float first_weight = 1;
  float second_weight = 0;
};

std::vector<Tap> AxisTaps(int64_t input_size, int64_t output_size) {
  std::vector<Tap> taps(output_size);
  if (input_size == output_size) {
    for (int64_t i = 0; i < output_size; ++i)
      taps[i].first = taps[i].second = i;
    return taps;
  }
  const float scale =
      static_cast<float>(input_size) / static_cast<float>(output_size);
  for (int64_t i = 0; i < output_size; ++i) {
    const float source =
        std::max(scale * (static_cast<float>(i) + 0.5f) - 0.5f, 0.0f);
    Tap& tap = taps[i];
    tap.first = static_cast<int64_t>(source);
    tap.second = tap.first + (tap.first < input_size - 1 ? 1 : 0);
    tap.second_weight =
        std::min(std::max(source - static_cast<float>(tap.first), 0.0f), 1.0f);
    tap.first_weight = 1.0f - tap.second_weight;
  }
  return taps;
}

// exp(x) for x <= 0 (softmax terms), branch-free so that it vectorizes:
// Cephes' expf (range reduction by ln 2 in two parts, degree-5 polynomial),
// within 2 ulp; below -87 it returns about 1e-38 rather than 0, and NaN
// (a NaN logit) counts as -87.
inline float ExpOfNonPositive(float x) {
  x = std::max(-87.0f, x);
  const float t = x * 1.44269504088896341f + 0.5f;
  int32_t n = static_cast<int32_t>(t);  // Truncates toward zero: fix to floor.
  n -= static_cast<float>(n) > t ? 1 : 0;
  const float k = static_cast<float>(n);
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float power;
  std::memcpy(&power, &bits, sizeof(power));
  return e * power;
}

// row[c * width + x]: source row `source_row` of every class, interpolated
// along the width.
void InterpolateRow(const LogitsPlane& logits, int64_t source_row,
                    const std::vector<Tap>& columns, float* row) {
  const int64_t width = static_cast<int64_t>(columns.size());
  for (int64_t c = 0; c < logits.classes; ++c) {
    const float* source =
        logits.data + c * logits.class_stride + source_row * logits.row_stride;
    float* out = row + c * width;
    for (int64_t x = 0; x < width; ++x) {
      const Tap& tap = columns[x];
      out[x] = source[tap.first * logits.column_stride] * tap.first_weight +
               source[tap.second * logits.column_stride] * tap.second_weight;
    }
  }
}

// The interpolated logit of class c at each x: top * a + bottom * b, as
// ATen's (height outer, width inner); the running maximum and its class.
SEGSERVE_VECTOR_CLONES
void ArgmaxRow(const float* top, const float* bottom, float a, float b,
               int64_t classes, int64_t width, float* best, int32_t* index) {
  for (int64_t x = 0; x < width; ++x) {
    best[x] = top[x] * a + bottom[x] * b;
    index[x] = 0;
  }
  for (int64_t c = 1; c < classes; ++c) {
    const float* t = top + c * width;
    const float* u = bottom + c * width;
    const int32_t label = static_cast<int32_t>(c);
    for (int64_t x = 0; x < width; ++x) {
      const float value = t[x] * a + u[x] * b;
      const bool higher = value > best[x];
      best[x] = higher ? value : best[x];
      index[x] = higher ? label : index[x];
    }
  }
}

// sum_c exp(l_c - max) at each x, then round(255 / sum) as the unfused
// path's reciprocal, scale and round.
SEGSERVE_VECTOR_CLONES
void ConfidenceRow(const float* top, const float* bottom, float a, float b,
                   int64_t classes, int64_t width, const float* best,
                   float* total, uint8_t* confidence) {
  for (int64_t x = 0; x < width; ++x) total[x] = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const float* t = top + c * width;
    const float* u = bottom + c * width;
    for (int64_t x = 0; x < width; ++x) {
      total[x] += ExpOfNonPositive(t[x] * a + u[x] * b - best[x]);
    }
  }
  for (int64_t x = 0; x < width; ++x) {
    const float value = std::nearbyint((1.0f / total[x]) * 255.0f);
    confidence[x] = static_cast<uint8_t>(
        std::min(std::max(0.0f, value), 255.f));  // NaN: 0.
  }
}

// The two most recent width-interpolated source rows.
class RowCache {
 public:
  RowCache(const LogitsPlane& logits, const std::vector<Tap>& columns)
      : logits_(logits),
        columns_(columns),
        rows_{std::vector<float>(logits.classes * columns.size()),
              std::vector<float>(logits.classes * columns.size())} {}

  const float* Row(int64_t source_row) {
    for (int slot = 0; slot < 2; ++slot) {
      if (held_[slot] == source_row) return rows_[slot].data();
    }
    // Rows are asked for in increasing order: replace the older one.
    const int slot = held_[0] < held_[1] ? 0 : 1;
    InterpolateRow(logits_, source_row, columns_, rows_[slot].data());
    held_[slot] = source_row;
    return rows_[slot].data();
  }

 private:
  const LogitsPlane& logits_;
  const std::vector<Tap>& columns_;
  std::vector<float> rows_[2];
  int64_t held_[2] = {-1, -1};
};

}  // namespace

void UpsampledArgmaxRows(const LogitsPlane& logits, const UpsampledMask& mask,
                         int64_t row_begin, int64_t row_end) {
  if (row_begin >= row_end || logits.classes < 1) return;
  const std::vector<Tap> columns = AxisTaps(logits.width, mask.width);
  const std::vector<Tap> rows = AxisTaps(logits.height, mask.height);
  RowCache cache(logits, columns);
  const int64_t width = mask.width;
  std::vector<float> best(width), total(width);
  std::vector<int32_t> index(width);
  for (int64_t y = row_begin; y < row_end; ++y) {
    const Tap& tap = rows[y];
    // Fetch the lower row first so that the cache keeps both.
    const float* top = cache.Row(tap.first);
    const float* bottom = cache.Row(tap.second);
    ArgmaxRow(top, bottom, tap.first_weight, tap.second_weight, logits.classes,
              width, best.data(), index.data());
    if (mask.wide_labels) {
      uint16_t* labels = static_cast<uint16_t*>(mask.labels) + y * width;
      for (int64_t x = 0; x < width; ++x) {
        labels[x] = static_cast<uint16_t>(index[x]);
      }
    } else {
      uint8_t* labels = static_cast<uint8_t*>(mask.labels) + y * width;
      for (int64_t x = 0; x < width; ++x) {
        labels[x] = static_cast<uint8_t>(index[x]);
      }
    }
    if (mask.confidence != nullptr) {
      ConfidenceRow(top, bottom, tap.first_weight, tap.second_weight,
                    logits.classes, width, best.data(), total.data(),
                    mask.confidence + y * width);
    }
  }
}

}  // namespace segserve
