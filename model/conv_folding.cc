#include "model/conv_folding.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace segserve {

ChannelAffine BatchNormAffine(const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const torch::Tensor scale =
      bn->weight / torch::sqrt(bn->running_var + bn->options.eps());
  return {scale, bn->bias - bn->running_mean * scale};
}

namespace {

// One N x C plane at a time: out = bias + sum_j w[j] * x shifted by j - pad
// along rows (dim 2) or columns (dim 3), zero outside. The inner loops run
// over contiguous rows and vectorize.
void BandConvPlane(const float* in, float* out, const float* taps,
                   int64_t num_taps, float bias, int64_t height, int64_t width,
                   int64_t dim) {
  const int64_t pad = num_taps / 2;
  for (int64_t i = 0; i < height * width; ++i) out[i] = bias;
  if (dim == 2) {
    for (int64_t y = 0; y < height; ++y) {
      float* row = out + y * width;
      for (int64_t j = 0; j < num_taps; ++j) {
        const int64_t source = y + j - pad;
        if (source < 0 || source >= height) continue;
        const float* input = in + source * width;
        const float tap = taps[j];
        for (int64_t x = 0; x < width; ++x) row[x] += tap * input[x];
      }
    }
    return;
  }
  for (int64_t y = 0; y < height; ++y) {
    float* row = out + y * width;
    const float* input = in + y * width;
    for (int64_t j = 0; j < num_taps; ++j) {
      const int64_t d = j - pad;  // Output x reads input x + d.
      const int64_t first = std::max<int64_t>(0, -d);
      const int64_t last = std::min<int64_t>(width, width - d);
      const float tap = taps[j];
      for (int64_t x = first; x < last; ++x) row[x] += tap * input[x + d];
    }
  }
}

// The same with tensor ops, for other devices and dtypes.
torch::Tensor BandConvByTensorOps(const torch::Tensor& x,
                                  const torch::Tensor& weight,
                                  const torch::Tensor& bias, int64_t dim) {
  const int64_t length = x.size(dim);
  const int64_t taps = weight.size(1);
  const int64_t pad = taps / 2;
  const torch::Tensor w = weight.t().reshape({taps, 1, -1, 1, 1});
  torch::Tensor out = torch::zeros_like(x);
  if (bias.defined()) out.add_(bias.view({1, -1, 1, 1}));
  for (int64_t j = 0; j < taps; ++j) {
    const int64_t d = j - pad;
    const int64_t span = length - std::abs(d);
    if (span <= 0) continue;
    out.narrow(dim, std::max<int64_t>(0, -d), span)
        .addcmul_(x.narrow(dim, std::max<int64_t>(0, d), span), w[j]);
  }
  return out;
}

}  // namespace

torch::Tensor DepthwiseBandConv(const torch::Tensor& x,
                                const torch::Tensor& weight,
                                const torch::Tensor& bias, int64_t dim) {
  TORCH_CHECK(x.dim() == 4 && (dim == 2 || dim == 3) && weight.dim() == 2 &&
                  weight.size(0) == x.size(1) && weight.size(1) % 2 == 1,
              "DepthwiseBandConv: bad shapes");
  if (!x.is_cpu() || x.scalar_type() != torch::kFloat) {
    return BandConvByTensorOps(x, weight, bias, dim);
  }
  // One parallel loop over the planes: under CPU contention the number of
  // parallel regions, not the arithmetic, sets the time of such small ops.
  const torch::Tensor input = x.contiguous();
  const torch::Tensor taps = weight.to(torch::kFloat).contiguous();
  const torch::Tensor biases =
      bias.defined() ? bias.to(torch::kFloat).contiguous() : torch::Tensor();
  torch::Tensor out = torch::empty_like(input);
  const int64_t channels = x.size(1);
  const int64_t height = x.size(2);
  const int64_t width = x.size(3);
  const int64_t num_taps = weight.size(1);
  const float* in = input.data_ptr<float>();
  const float* w = taps.data_ptr<float>();
  const float* b = biases.defined() ? biases.data_ptr<float>() : nullptr;
  float* o = out.data_ptr<float>();
  const int64_t plane = height * width;
  at::parallel_for(0, x.size(0) * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % channels;
      BandConvPlane(in + p * plane, o + p * plane, w + c * num_taps, num_taps,
                    b ? b[c] : 0.0f, height, width, dim);
    }
  });
  return x.suggest_memory_format() == at::MemoryFormat::ChannelsLast
             ? out.contiguous(at::MemoryFormat::ChannelsLast)
             : out;
}

}  // namespace segserve
