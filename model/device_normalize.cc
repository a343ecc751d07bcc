#include "model/device_normalize.h"

#include <vector>

namespace segserve {

NormalizeFactors MakeNormalizeFactors(const std::array<float, 3>& mean,
                                      const std::array<float, 3>& std,
                                      torch::Device device) {
  std::vector<float> scale;
  std::vector<float> shift;
  for (int c = 0; c < 3; ++c) {
    scale.push_back(1.0f / std[c]);
    shift.push_back(-mean[c] / std[c]);
  }
  return {torch::tensor(scale).view({1, 3, 1, 1}).to(device),
          torch::tensor(shift).view({1, 3, 1, 1}).to(device)};
}

torch::Tensor NormalizeBytes(const torch::Tensor& bytes,
                             absl::Span<const ModelInput> inputs,
                             const NormalizeFactors& factors) {
  torch::Tensor batch = bytes.permute({0, 3, 1, 2})
                            .contiguous()
                            .to(torch::kFloat)
                            .mul_(factors.scale)
                            .add_(factors.shift);
  const int height = int(batch.size(2));
  const int width = int(batch.size(3));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ContentRegion& region = inputs[i].region;
    if (region.Covers(width, height)) continue;
    torch::Tensor image = batch[int64_t(i)];
    const torch::Tensor content = image.narrow(1, region.y, region.height)
                                      .narrow(2, region.x, region.width)
                                      .clone();
    image.zero_();
    image.narrow(1, region.y, region.height)
        .narrow(2, region.x, region.width)
        .copy_(content);
  }
  return batch;
}

}  // namespace segserve
