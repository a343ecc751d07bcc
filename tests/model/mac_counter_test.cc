#include "model/mac_counter.h"

#include <gtest/gtest.h>
#include <torch/nn/functional/conv.h>
#include <torch/types.h>

namespace segserve {
namespace {

namespace F = torch::nn::functional;

TEST(MacCounterTest, DenseConvCountsOutputsTimesInputsTimesKernel) {
  MacCounter counter;
  torch::conv2d(torch::randn({1, 3, 8, 8}), torch::randn({5, 3, 3, 3}), {}, 1,
                1);
  EXPECT_EQ(counter.count().conv, 5 * 8 * 8 * 3 * 9);
  EXPECT_EQ(counter.count().linear, 0);
}

TEST(MacCounterTest, GroupedAndDepthwiseConvsCountInputsPerGroup) {
  MacCounter counter;
  // 4 -> 6 channels in 2 groups, 3x3 stride 2 on 8x8: 4x4 outputs, each
  // reading 2 channels.
  torch::conv2d(torch::randn({1, 4, 8, 8}), torch::randn({6, 2, 3, 3}), {}, 2,
                1, 1, 2);
  EXPECT_EQ(counter.count().conv, 6 * 4 * 4 * 2 * 9);
  // Depthwise 1x5 band on 6x6: one channel, five taps per output.
  torch::conv2d(torch::randn({2, 4, 6, 6}), torch::randn({4, 1, 1, 5}),
                torch::randn({4}), 1, torch::IntArrayRef({0, 2}), 1, 4);
  EXPECT_EQ(counter.count().conv, 6 * 4 * 4 * 2 * 9 + 2 * 4 * 36 * 5);
}

TEST(MacCounterTest, TransposedConvCountsInputsTimesOutputsPerGroup) {
  MacCounter counter;
  F::conv_transpose2d(torch::randn({1, 4, 3, 3}), torch::randn({4, 2, 3, 3}),
                      F::ConvTranspose2dFuncOptions().stride(2));
  EXPECT_EQ(counter.count().conv, 4 * 9 * 2 * 9);
}

TEST(MacCounterTest, LinearCountsOutputsTimesInFeaturesButMatmulNot) {
  MacCounter counter;
  torch::linear(torch::randn({2, 7, 10}), torch::randn({4, 10}),
                torch::randn({4}));
  torch::linear(torch::randn({3, 10}), torch::randn({4, 10}));
  EXPECT_EQ(counter.count().linear, 2 * 7 * 4 * 10 + 3 * 4 * 10);
  // Attention-style products are not layers.
  torch::matmul(torch::randn({2, 5, 6}), torch::randn({2, 6, 5}));
  torch::bmm(torch::randn({2, 5, 6}), torch::randn({2, 6, 5}));
  EXPECT_EQ(counter.count().linear, 2 * 7 * 4 * 10 + 3 * 4 * 10);
  EXPECT_EQ(counter.count().conv, 0);
  EXPECT_EQ(counter.count().total(), counter.count().linear);
}

TEST(MacCounterTest, CountsUnderInferenceModeAndOnlyWhileAlive) {
  const torch::Tensor input = torch::randn({1, 2, 4, 4});
  const torch::Tensor weight = torch::randn({3, 2, 1, 1});
  torch::conv2d(input, weight);  // Before any counter: nothing to see.
  MacCount inner_count;
  {
    MacCounter outer;
    {
      c10::InferenceMode inference_mode;
      MacCounter inner;
      torch::conv2d(input, weight);
      inner_count = inner.count();
    }
    torch::conv2d(input, weight);
    EXPECT_EQ(outer.count().conv, 2 * 3 * 16 * 2);
  }
  EXPECT_EQ(inner_count.conv, 3 * 16 * 2);
  // The callbacks are gone: a new counter starts from zero and only counts
  // its own span.
  MacCounter later;
  EXPECT_EQ(later.count().conv, 0);
  torch::conv2d(input, weight);
  EXPECT_EQ(later.count().conv, 3 * 16 * 2);
}

}  // namespace
}  // namespace segserve
