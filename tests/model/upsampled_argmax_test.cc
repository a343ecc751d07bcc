#include "model/upsampled_argmax.h"

#include <gtest/gtest.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace segserve {
namespace {

namespace F = torch::nn::functional;

// The unfused path: F::interpolate to the mask's size, then argmax and the
// winning softmax probability as TorchModel computes them.
struct Reference {
  torch::Tensor labels;      // H x W int64.
  torch::Tensor confidence;  // H x W uint8.
  torch::Tensor margin;      // H x W: top logit minus the runner-up.
};

Reference Unfused(const torch::Tensor& logits, int64_t height, int64_t width) {
  const torch::Tensor up = F::interpolate(
      logits.unsqueeze(0), F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{height, width})
                               .mode(torch::kBilinear)
                               .align_corners(false))[0];
  auto [top, labels] = up.max(/*dim=*/0);
  const torch::Tensor total = (up - top.unsqueeze(0)).exp().sum(0);
  const torch::Tensor confidence =
      total.reciprocal().mul(255).round().clamp(0, 255).to(torch::kUInt8);
  const torch::Tensor sorted =
      std::get<0>(up.topk(std::min<int64_t>(2, up.size(0)), /*dim=*/0));
  const torch::Tensor margin =
      up.size(0) > 1 ? sorted[0] - sorted[1] : torch::full_like(top, 1e9);
  return {labels, confidence, margin};
}

struct Fused {
  std::vector<uint16_t> wide;
  std::vector<uint8_t> labels;
  std::vector<uint8_t> confidence;
  int64_t Label(int64_t i) const { return wide.empty() ? labels[i] : wide[i]; }
};

// The fused pass over `logits` (C x h x w, any strides), in `chunks` row
// ranges, as the intra-op threads split it.
Fused RunFused(const torch::Tensor& logits, int64_t height, int64_t width,
               int chunks) {
  Fused out;
  const bool wide = logits.size(0) > 256;
  (wide ? out.wide.resize(height * width) : out.labels.resize(height * width));
  out.confidence.resize(height * width);
  const LogitsPlane plane{.data = logits.data_ptr<float>(),
                          .classes = logits.size(0),
                          .height = logits.size(1),
                          .width = logits.size(2),
                          .class_stride = logits.stride(0),
                          .row_stride = logits.stride(1),
                          .column_stride = logits.stride(2)};
  const UpsampledMask mask{
      .labels = wide ? static_cast<void*>(out.wide.data()) : out.labels.data(),
      .wide_labels = wide,
      .confidence = out.confidence.data(),
      .height = height,
      .width = width};
  for (int k = 0; k < chunks; ++k) {
    UpsampledArgmaxRows(plane, mask, height * k / chunks,
                        height * (k + 1) / chunks);
  }
  return out;
}

// Labels equal to the unfused path's wherever the top two classes are more
// than rounding apart, and on nearly every pixel; confidence within 1.
void ExpectAgrees(const torch::Tensor& logits, int64_t height, int64_t width,
                  int chunks = 1) {
  SCOPED_TRACE(testing::Message() << "logits " << logits.sizes() << " to "
                                  << height << "x" << width);
  const Reference reference = Unfused(logits.contiguous(), height, width);
  const Fused fused = RunFused(logits, height, width, chunks);
  const float tolerance = 1e-5f * logits.abs().max().item<float>();
  const auto labels = reference.labels.accessor<int64_t, 2>();
  const auto confidence = reference.confidence.accessor<uint8_t, 2>();
  const auto margin = reference.margin.accessor<float, 2>();
  int64_t differing = 0;
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const int64_t i = y * width + x;
      if (fused.Label(i) != labels[y][x]) {
        ++differing;
        ASSERT_LE(margin[y][x], tolerance) << "at (" << x << ", " << y << ")";
      }
      ASSERT_NEAR(fused.confidence[i], confidence[y][x], 1)
          << "at (" << x << ", " << y << ")";
    }
  }
  EXPECT_LE(differing, height * width / 10000);
}

TEST(UpsampledArgmaxTest, AgreesWithTheUnfusedPathAtTheServedRatio) {
  torch::manual_seed(1);
  // SGCPNet at 512x512: 19 classes at 1/8.
  ExpectAgrees(torch::randn({19, 64, 64}) * 4, 512, 512);
}

TEST(UpsampledArgmaxTest, AgreesForAnyRatioLayoutAndSplit) {
  torch::manual_seed(2);
  // Channels-last logits (as SGCPNet's convs produce) read by their strides.
  const torch::Tensor nhwc = (torch::randn({1, 7, 33, 21}) * 3)
                                 .contiguous(at::MemoryFormat::ChannelsLast)[0];
  ASSERT_FALSE(nhwc.is_contiguous());
  ExpectAgrees(nhwc, 250, 171, /*chunks=*/3);
  ExpectAgrees(torch::randn({5, 40, 30}), 23, 17);  // Shrinking.
  ExpectAgrees(torch::randn({3, 16, 16}), 16, 16);  // Same size.
  ExpectAgrees(torch::randn({1, 8, 8}), 20, 20);    // One class.
  ExpectAgrees(torch::randn({4, 1, 1}), 9, 5);      // One source pixel.
}

TEST(UpsampledArgmaxTest, WideLabelsAbove256Classes) {
  torch::manual_seed(3);
  ExpectAgrees(torch::randn({300, 6, 5}) * 5, 24, 20, /*chunks=*/2);
}

TEST(UpsampledArgmaxTest, FirstClassWinsTiesAndConfidenceSplitsEvenly) {
  // Two classes equal everywhere: class 0, probability 1/2.
  const torch::Tensor logits = torch::ones({2, 4, 4});
  const Fused fused = RunFused(logits, 8, 8, 1);
  for (int64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(fused.Label(i), 0);
    EXPECT_EQ(fused.confidence[i], 128);  // round(127.5) to even.
  }
}

// A NaN logit (a broken model) never wins over a number and leaves the
// confidence a valid byte.
TEST(UpsampledArgmaxTest, NanLogitsNeverWinOverNumbers) {
  torch::Tensor logits = torch::zeros({3, 2, 2});
  logits[2].fill_(std::numeric_limits<float>::quiet_NaN());
  logits[1].fill_(1);
  const Fused fused = RunFused(logits, 4, 4, 1);
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(fused.Label(i), 1);
    // exp(1 - 1) / (exp(0 - 1) + exp(1 - 1) + ~0) = 0.731 of 255.
    EXPECT_EQ(fused.confidence[i], 186);
  }
}

}  // namespace
}  // namespace segserve
