// The CGRSeg head's parts against values computed here by direct loops, and
// the whole head against the independent Python reference.

#include "model/cgrseg_head.h"

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/cgrseg.h"
#include "model/checkpoint.h"
#include "model/conv_folding.h"
#include "model/ssa_head.h"
#include "tests/model/cgrseg_test_util.h"
#include "tests/model/model_test_util.h"

namespace segserve {
namespace {

using cgrseg_testing::RelativeError;
using testing_util::Randomize;

constexpr double kBnEps = 1e-5;

// A float tensor's values as doubles, indexable by a flat offset.
std::vector<double> Values(const torch::Tensor& t) {
  const torch::Tensor d = t.to(torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(),
                             d.data_ptr<double>() + d.numel());
}

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double Gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// Eval-mode BatchNorm of one value of channel c.
double BatchNorm(double x, int64_t c, const std::vector<double>& weight,
                 const std::vector<double>& bias,
                 const std::vector<double>& mean,
                 const std::vector<double>& var) {
  return (x - mean[c]) / std::sqrt(var[c] + kBnEps) * weight[c] + bias[c];
}

std::map<std::string, std::vector<double>> StateValues(
    const torch::nn::Module& module) {
  std::map<std::string, std::vector<double>> values;
  for (const auto& [name, tensor] : ModuleState(module)) {
    if (tensor.is_floating_point()) values[name] = Values(tensor);
  }
  return values;
}

torch::Tensor Infer(const std::function<torch::Tensor()>& forward) {
  c10::InferenceMode inference_mode;
  return forward();
}

// An RCM on a 1 x 3 x 5 x 7 map, computed with loops straight from the
// paper's definition: axial means added, 1xk then kx1 depthwise convs
// (BN + ReLU between, sigmoid after) gating a 3x3 depthwise branch, BN,
// conv MLP with exact GELU, layer scale, residual.
TEST(RcmTest, MatchesDirectLoops) {
  constexpr int64_t kC = 3, kH = 5, kW = 7, kBand = 5, kSquare = 3;
  cgrseg::Rcm rcm(kC, kBand, kSquare, /*mlp_ratio=*/2);
  Randomize(*rcm, 21);
  rcm->eval();
  const torch::Tensor input = torch::randn({1, kC, kH, kW});
  const torch::Tensor actual = Infer([&] { return rcm->forward(input); });

  auto p = StateValues(*rcm);
  const std::vector<double> x = Values(input);
  auto at = [&](int64_t c, int64_t h, int64_t w) {
    return x[(c * kH + h) * kW + w];
  };
  std::vector<double> out(kC * kH * kW);
  std::vector<double> mixed(kC * kH * kW);
  for (int64_t c = 0; c < kC; ++c) {
    std::vector<double> rows(kH, 0), cols(kW, 0);
    for (int64_t h = 0; h < kH; ++h) {
      for (int64_t w = 0; w < kW; ++w) {
        rows[h] += at(c, h, w) / kW;
        cols[w] += at(c, h, w) / kH;
      }
    }
    // 1 x k band conv along W, then BN + ReLU.
    std::vector<double> band(kH * kW);
    for (int64_t h = 0; h < kH; ++h) {
      for (int64_t w = 0; w < kW; ++w) {
        double sum = p["token_mixer.excite.0.bias"][c];
        for (int64_t j = 0; j < kBand; ++j) {
          const int64_t ww = w + j - kBand / 2;
          if (ww < 0 || ww >= kW) continue;
          sum += p["token_mixer.excite.0.weight"][c * kBand + j] *
                 (rows[h] + cols[ww]);
        }
        band[h * kW + w] =
            std::max(0.0, BatchNorm(sum, c, p["token_mixer.excite.1.weight"],
                                    p["token_mixer.excite.1.bias"],
                                    p["token_mixer.excite.1.running_mean"],
                                    p["token_mixer.excite.1.running_var"]));
      }
    }
    for (int64_t h = 0; h < kH; ++h) {
      for (int64_t w = 0; w < kW; ++w) {
        // k x 1 band conv along H, sigmoid.
        double gate = p["token_mixer.excite.3.bias"][c];
        for (int64_t i = 0; i < kBand; ++i) {
          const int64_t hh = h + i - kBand / 2;
          if (hh < 0 || hh >= kH) continue;
          gate += p["token_mixer.excite.3.weight"][c * kBand + i] *
                  band[hh * kW + w];
        }
        // Square depthwise branch.
        double local = p["token_mixer.dwconv_hw.bias"][c];
        for (int64_t i = 0; i < kSquare; ++i) {
          for (int64_t j = 0; j < kSquare; ++j) {
            const int64_t hh = h + i - 1, ww = w + j - 1;
            if (hh < 0 || hh >= kH || ww < 0 || ww >= kW) continue;
            local += p["token_mixer.dwconv_hw.weight"]
                      [(c * kSquare + i) * kSquare + j] *
                     at(c, hh, ww);
          }
        }
        mixed[(c * kH + h) * kW + w] = BatchNorm(
            Sigmoid(gate) * local, c, p["norm.weight"], p["norm.bias"],
            p["norm.running_mean"], p["norm.running_var"]);
      }
    }
  }
  constexpr int64_t kHidden = 2 * kC;
  for (int64_t h = 0; h < kH; ++h) {
    for (int64_t w = 0; w < kW; ++w) {
      std::vector<double> hidden(kHidden);
      for (int64_t o = 0; o < kHidden; ++o) {
        double sum = p["mlp.fc1.bias"][o];
        for (int64_t c = 0; c < kC; ++c) {
          sum += p["mlp.fc1.weight"][o * kC + c] * mixed[(c * kH + h) * kW + w];
        }
        hidden[o] = Gelu(sum);
      }
      for (int64_t c = 0; c < kC; ++c) {
        double sum = p["mlp.fc2.bias"][c];
        for (int64_t o = 0; o < kHidden; ++o) {
          sum += p["mlp.fc2.weight"][c * kHidden + o] * hidden[o];
        }
        out[(c * kH + h) * kW + w] = at(c, h, w) + p["gamma"][c] * sum;
      }
    }
  }
  const torch::Tensor expected =
      torch::tensor(out, torch::kDouble).view({1, kC, kH, kW});
  EXPECT_LE(RelativeError(actual.to(torch::kDouble), expected), 1e-5);
  // The layer scale is doing something: the block is not the identity.
  EXPECT_GT((actual - input).abs().max().item<float>(), 1e-2);
}

// The shifted multiply-adds equal LibTorch's depthwise conv2d with a 1 x k
// or k x 1 kernel, zero padding k / 2, including kernels wider than the map.
TEST(ConvFoldingTest, DepthwiseBandConvEqualsConv2d) {
  const torch::Tensor x = torch::randn({2, 3, 5, 7});
  for (int64_t taps : {1, 3, 11}) {
    const torch::Tensor weight = torch::randn({3, taps});
    const torch::Tensor bias = torch::randn({3});
    const torch::Tensor along_w =
        torch::conv2d(x, weight.view({3, 1, 1, taps}), bias, 1,
                      torch::IntArrayRef({0, taps / 2}), 1, 3);
    const torch::Tensor along_h =
        torch::conv2d(x, weight.view({3, 1, taps, 1}), {}, 1,
                      torch::IntArrayRef({taps / 2, 0}), 1, 3);
    EXPECT_TRUE(torch::allclose(DepthwiseBandConv(x, weight, bias, 3), along_w,
                                1e-5, 1e-5))
        << taps;
    EXPECT_TRUE(torch::allclose(
        DepthwiseBandConv(x, weight, torch::Tensor(), 2), along_h, 1e-5, 1e-5))
        << taps;
    const torch::Tensor channels_last =
        x.contiguous(at::MemoryFormat::ChannelsLast);
    EXPECT_TRUE(
        torch::allclose(DepthwiseBandConv(channels_last, weight, bias, 3),
                        along_w, 1e-5, 1e-5));
    // Other dtypes take the tensor-op path.
    EXPECT_TRUE(torch::allclose(
        DepthwiseBandConv(x.to(torch::kDouble), weight.to(torch::kDouble),
                          bias.to(torch::kDouble), 3),
        along_w.to(torch::kDouble), 1e-5, 1e-5));
  }
}

TEST(ConvFoldingTest, BatchNormAffineIsTheEvalModeBatchNorm) {
  torch::nn::BatchNorm2d bn(4);
  Randomize(*bn, 26);
  bn->eval();
  const torch::Tensor x = torch::randn({2, 4, 3, 3});
  const ChannelAffine affine = BatchNormAffine(bn);
  EXPECT_TRUE(torch::allclose(
      Infer([&] { return bn->forward(x); }),
      x * affine.scale.view({1, -1, 1, 1}) + affine.shift.view({1, -1, 1, 1}),
      1e-5, 1e-6));
}

// Every prepared part computes what it computed before: RCM (both BNs
// folded, band convs by shifted multiply-adds), ConvBn dense and depthwise.
TEST(PrepareForInferenceTest, PreparedModulesMatchThePlainOnes) {
  cgrseg::Rcm rcm(6, 5, 3, 2);
  Randomize(*rcm, 27);
  rcm->eval();
  const torch::Tensor x = torch::randn({2, 6, 7, 9});
  const torch::Tensor plain = Infer([&] { return rcm->forward(x); });
  rcm->PrepareForInference();
  EXPECT_LE(RelativeError(Infer([&] { return rcm->forward(x); }), plain), 1e-5);
  EXPECT_THROW(rcm->PrepareForInference(), c10::Error);

  for (int64_t groups : {1, 6}) {
    cgrseg::ConvBn conv_bn(6, 6, groups, /*relu=*/true);
    Randomize(*conv_bn, 28);
    conv_bn->eval();
    const torch::Tensor before = Infer([&] { return conv_bn->forward(x); });
    conv_bn->PrepareForInference();
    EXPECT_LE(RelativeError(Infer([&] { return conv_bn->forward(x); }), before),
              1e-5)
        << groups;
  }
  cgrseg::ConvBn training(6, 6, 1, false);
  EXPECT_THROW(training->PrepareForInference(), c10::Error);
}

// Adaptive average pooling to the 1/64 size, with windows
// [floor(i * in / out), ceil((i + 1) * in / out)) on sizes that do not
// divide.
TEST(PyramidPoolTest, PoolsEveryLevelToHalfTheCoarsestSize) {
  const std::vector<torch::Tensor> levels = {torch::randn({2, 2, 12, 20}),
                                             torch::randn({2, 3, 6, 10}),
                                             torch::randn({2, 1, 3, 5})};
  const torch::Tensor pooled = cgrseg::PyramidPool(levels);
  ASSERT_EQ(pooled.sizes(), (std::vector<int64_t>{2, 6, 2, 3}));
  int64_t channel = 0;
  for (const torch::Tensor& level : levels) {
    const int64_t in_h = level.size(2), in_w = level.size(3);
    for (int64_t c = 0; c < level.size(1); ++c, ++channel) {
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t j = 0; j < 3; ++j) {
          const int64_t h0 = i * in_h / 2, h1 = ((i + 1) * in_h + 1) / 2;
          const int64_t w0 = j * in_w / 3, w1 = ((j + 1) * in_w + 2) / 3;
          const torch::Tensor window =
              level.slice(2, h0, h1).slice(3, w0, w1).select(1, c);
          EXPECT_TRUE(torch::allclose(
              pooled.select(1, channel).select(1, i).select(1, j),
              window.mean({1, 2}), 1e-5, 1e-6));
        }
      }
    }
  }
}

// The spatial gather of class prototypes and the DPG block, by loops:
// p_k = sum_n softmax_n(l_k) x_n; context = sum_k softmax_k(w.p_k + b) p_k;
// out = x * sigmoid(conv(relu(LN(conv(context))))).
TEST(DpgBlockTest, MatchesDirectLoops) {
  constexpr int64_t kC = 4, kK = 5, kN = 6;  // 2 x 3 positions.
  cgrseg::DpgBlock dpg(kC);
  Randomize(*dpg, 22);
  dpg->eval();
  const torch::Tensor x = torch::randn({1, kC, 2, 3});
  const torch::Tensor logits = torch::randn({1, kK, 2, 3}) * 2;
  const torch::Tensor prototypes = cgrseg::GatherPrototypes(x, logits);
  ASSERT_EQ(prototypes.sizes(), (std::vector<int64_t>{1, kC, kK, 1}));
  const torch::Tensor actual =
      Infer([&] { return dpg->forward(x, prototypes); });

  auto p = StateValues(*dpg);
  const std::vector<double> xv = Values(x), lv = Values(logits);
  std::vector<double> proto(kC * kK, 0);
  for (int64_t k = 0; k < kK; ++k) {
    double total = 0;
    for (int64_t n = 0; n < kN; ++n) total += std::exp(lv[k * kN + n]);
    for (int64_t c = 0; c < kC; ++c) {
      for (int64_t n = 0; n < kN; ++n) {
        proto[c * kK + k] += std::exp(lv[k * kN + n]) / total * xv[c * kN + n];
      }
    }
  }
  EXPECT_LE(RelativeError(prototypes.to(torch::kDouble).flatten(),
                          torch::tensor(proto, torch::kDouble)),
            1e-5);
  std::vector<double> mask(kK), context(kC, 0);
  double mask_total = 0;
  for (int64_t k = 0; k < kK; ++k) {
    double m = p["conv_mask.bias"][0];
    for (int64_t c = 0; c < kC; ++c) {
      m += p["conv_mask.weight"][c] * proto[c * kK + k];
    }
    mask[k] = std::exp(m);
    mask_total += mask[k];
  }
  for (int64_t c = 0; c < kC; ++c) {
    for (int64_t k = 0; k < kK; ++k) {
      context[c] += mask[k] / mask_total * proto[c * kK + k];
    }
  }
  std::vector<double> hidden(kC);
  double mean = 0, var = 0;
  for (int64_t o = 0; o < kC; ++o) {
    hidden[o] = p["channel_mul_conv.0.bias"][o];
    for (int64_t c = 0; c < kC; ++c) {
      hidden[o] += p["channel_mul_conv.0.weight"][o * kC + c] * context[c];
    }
    mean += hidden[o] / kC;
  }
  for (int64_t o = 0; o < kC; ++o) {
    var += (hidden[o] - mean) * (hidden[o] - mean) / kC;
  }
  for (int64_t o = 0; o < kC; ++o) {
    hidden[o] = std::max(0.0, (hidden[o] - mean) / std::sqrt(var + kBnEps) *
                                      p["channel_mul_conv.1.weight"][o] +
                                  p["channel_mul_conv.1.bias"][o]);
  }
  std::vector<double> out(kC * kN);
  for (int64_t c = 0; c < kC; ++c) {
    double gate = p["channel_mul_conv.3.bias"][c];
    for (int64_t o = 0; o < kC; ++o) {
      gate += p["channel_mul_conv.3.weight"][c * kC + o] * hidden[o];
    }
    for (int64_t n = 0; n < kN; ++n) {
      out[c * kN + n] = xv[c * kN + n] * Sigmoid(gate);
    }
  }
  EXPECT_LE(RelativeError(actual.to(torch::kDouble).flatten(),
                          torch::tensor(out, torch::kDouble)),
            1e-5);
}

// SIM: fuse1(local) * bilinear-resized h_sigmoid(fuse2(global)).
TEST(FuseBlockTest, GatesLocalByUpsampledHardSigmoidOfGlobal) {
  cgrseg::FuseBlock sim(3, 4);
  Randomize(*sim, 23);
  sim->eval();
  const torch::Tensor local = torch::randn({1, 3, 4, 6});
  const torch::Tensor global = torch::randn({1, 3, 2, 3}) * 3;
  const torch::Tensor actual =
      Infer([&] { return sim->forward(local, global); });
  auto p = StateValues(*sim);
  // fuse1 at each local pixel, fuse2 at each global pixel (1x1 conv + BN).
  auto conv_bn = [&](const std::string& name, const torch::Tensor& in) {
    const torch::Tensor weight =
        torch::tensor(p[name + ".conv.weight"], torch::kDouble).view({4, 3});
    torch::Tensor y =
        torch::einsum("oc,chw->ohw", {weight, in[0].to(torch::kDouble)});
    const auto t = [&](const char* key) {
      return torch::tensor(p[name + ".bn." + key], torch::kDouble)
          .view({4, 1, 1});
    };
    return (y - t("running_mean")) / (t("running_var") + kBnEps).sqrt() *
               t("weight") +
           t("bias");
  };
  const torch::Tensor gate =
      (conv_bn("fuse2", global) + 3).clamp(0, 6) / 6;  // 4 x 2 x 3
  // Bilinear x2 with align_corners=false: source = (dst + 0.5) / 2 - 0.5,
  // clamped at 0, neighbours clamped at the edge.
  torch::Tensor up = torch::zeros({4, 4, 6}, torch::kDouble);
  for (int64_t y = 0; y < 4; ++y) {
    for (int64_t x = 0; x < 6; ++x) {
      const double sy = std::max(0.0, (y + 0.5) / 2 - 0.5);
      const double sx = std::max(0.0, (x + 0.5) / 2 - 0.5);
      const int64_t y0 = static_cast<int64_t>(sy),
                    x0 = static_cast<int64_t>(sx);
      const int64_t y1 = std::min<int64_t>(y0 + 1, 1);
      const int64_t x1 = std::min<int64_t>(x0 + 1, 2);
      const double fy = sy - y0, fx = sx - x0;
      up.select(1, y).select(1, x).copy_(
          gate.select(1, y0).select(1, x0) * (1 - fy) * (1 - fx) +
          gate.select(1, y0).select(1, x1) * (1 - fy) * fx +
          gate.select(1, y1).select(1, x0) * fy * (1 - fx) +
          gate.select(1, y1).select(1, x1) * fy * fx);
    }
  }
  const torch::Tensor expected = conv_bn("fuse1", local) * up;
  EXPECT_LE(RelativeError(actual[0].to(torch::kDouble), expected), 1e-5);
}

// 15 x cosine similarity, by loops, with the official "+ 1e-12 on the norm".
TEST(SsaTest, CosineLogitsAreFifteenTimesCosineSimilarity) {
  constexpr int64_t kC = 4, kK = 3, kH = 2, kW = 3;
  const torch::Tensor features = torch::randn({2, kC, kH, kW});
  const torch::Tensor centers = torch::randn({2, kK, kC});
  const torch::Tensor actual = ssa::CosineLogits(features, centers);
  ASSERT_EQ(actual.sizes(), (std::vector<int64_t>{2, kK, kH, kW}));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t k = 0; k < kK; ++k) {
      for (int64_t y = 0; y < kH; ++y) {
        for (int64_t x = 0; x < kW; ++x) {
          double dot = 0, norm_f = 0, norm_c = 0;
          for (int64_t c = 0; c < kC; ++c) {
            const double f = features[b][c][y][x].item<double>();
            const double z = centers[b][k][c].item<double>();
            dot += f * z;
            norm_f += f * f;
            norm_c += z * z;
          }
          const double expected =
              15 * dot /
              ((std::sqrt(norm_f) + 1e-12) * (std::sqrt(norm_c) + 1e-12));
          EXPECT_NEAR(actual[b][k][y][x].item<double>(), expected, 1e-5);
        }
      }
    }
  }
  // A zero pixel scores 0 rather than NaN, as in the official code.
  const torch::Tensor zero =
      ssa::CosineLogits(torch::zeros({1, kC, 1, 1}), torch::randn({1, kK, kC}));
  EXPECT_TRUE(torch::equal(zero, torch::zeros({1, kK, 1, 1})));
}

// The SSA head's training-only modules (gt_*, ssa_loss) load and never
// influence the output.
TEST(SsaTest, TrainingOnlyModulesDoNotChangeTheOutput) {
  CgrSegHead head(
      CgrSegHeadConfigFor(CgrSegVariant::kT, CgrSegClassifier::kSsa, 150));
  Randomize(*head, 24);
  head->eval();
  const std::vector<torch::Tensor> features = {
      torch::randn({1, 32, 16, 16}), torch::randn({1, 48, 8, 8}),
      torch::randn({1, 120, 4, 4}), torch::randn({1, 224, 2, 2})};
  const torch::Tensor before = Infer([&] { return head->forward(features); });
  int changed = 0;
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : ModuleState(*head)) {
      if (absl::StartsWith(name, "gt_") || absl::StartsWith(name, "ssa_loss")) {
        tensor.normal_();
        ++changed;
      }
    }
  }
  // gt_center_content_proj and gt_center_pos_proj (3 each), gt_center_proj,
  // ssa_loss.criterion.empty_weight.
  EXPECT_EQ(changed, 8);
  EXPECT_TRUE(
      torch::equal(before, Infer([&] { return head->forward(features); })));
}

// The SSA classifier's tensors by name, and its pieces as plain tensor ops:
// the references of the tests below.
struct SsaParameters {
  explicit SsaParameters(const torch::nn::Module& owner) {
    for (const auto& [name, tensor] : ModuleState(owner))
      tensors[name] = tensor;
  }
  // A prototype MLP: Linear (no bias), ReLU, Linear.
  torch::Tensor Mlp(const std::string& name, const torch::Tensor& x) const {
    const torch::Tensor h =
        torch::relu(x.matmul(tensors.at(name + ".0.weight").t()));
    return h.matmul(tensors.at(name + ".2.weight").t()) +
           tensors.at(name + ".2.bias");
  }
  // get_feat_pos: a depthwise 3x3 conv with bias.
  torch::Tensor PositionFeatures(const torch::Tensor& features) const {
    return torch::conv2d(features, tensors.at("get_feat_pos.weight"),
                         tensors.at("get_feat_pos.bias"), 1, 1, 1,
                         features.size(1));
  }
  std::map<std::string, torch::Tensor> tensors;
};

// The official SSA inference path, in the order the official forward_test
// runs it, with plain tensor ops here: every weight of the classifier and of
// both prototype MLPs matters.
TEST(SsaTest, ClassifierFollowsTheOfficialFormula) {
  constexpr int64_t kC = 8, kK = 5;
  // Module state walks need the owner in a shared_ptr.
  const auto owner = std::make_shared<torch::nn::Module>();
  SsaClassifier ssa(*owner, kC, kK);
  Randomize(*owner, 25);
  owner->eval();
  const torch::Tensor logits = torch::randn({2, kK, 3, 4}) * 2;
  const torch::Tensor features = torch::randn({2, kC, 3, 4});
  const torch::Tensor weights = torch::randn({kK, kC, 1, 1});
  const torch::Tensor actual =
      Infer([&] { return ssa.Forward(logits, features, weights); });

  const SsaParameters ref(*owner);
  const std::map<std::string, torch::Tensor>& p = ref.tensors;
  auto mlp = [&ref](const std::string& name, const torch::Tensor& x) {
    return ref.Mlp(name, x);
  };
  const torch::Tensor pos = ref.PositionFeatures(features);
  const torch::Tensor flat = logits.flatten(2);                   // B K N
  const torch::Tensor pos_flat = pos.flatten(2).transpose(1, 2);  // B N C
  const torch::Tensor feat_flat = features.flatten(2).transpose(1, 2);
  const torch::Tensor center_pos =
      mlp("center_pos_proj",
          torch::cat({p.at("center_pos.weight").unsqueeze(0).repeat({2, 1, 1}),
                      torch::softmax(flat, 2).bmm(pos_flat)},
                     -1));
  const torch::Tensor soft = torch::softmax(flat, 1);
  const torch::Tensor content =
      mlp("center_content_proj",
          torch::cat({soft.bmm(feat_flat) / (soft.sum(-1, true) + 1e-12),
                      weights.squeeze().unsqueeze(0).repeat({2, 1, 1})},
                     -1));
  const torch::Tensor center =
      (content + center_pos).matmul(p.at("center_proj.weight").t());
  const torch::Tensor expected = ssa::CosineLogits(features + pos, center);
  EXPECT_LE(RelativeError(actual, expected), 1e-5);
}

// The ground-truth branch of training, with the official get_gt_center's
// class-by-class loop: the semantic center of a class is its mean feature
// over the whole batch, its spatial center the mean position feature in
// each image; a class without pixels keeps the classifier weight or
// center_pos. The adapted branch's outputs are forward()'s.
TEST(SsaTest, GroundTruthBranchFollowsTheOfficialFormula) {
  constexpr int64_t kC = 8, kK = 4, kIgnore = 255;
  const auto owner = std::make_shared<torch::nn::Module>();
  SsaClassifier ssa(*owner, kC, kK);
  Randomize(*owner, 26);
  const torch::Tensor logits = torch::randn({2, kK, 3, 4}) * 2;
  const torch::Tensor features = torch::randn({2, kC, 3, 4});
  const torch::Tensor weights = torch::randn({kK, kC, 1, 1});
  // Class 3 has no pixel; class 2 only in image 1; one pixel unlabelled.
  const std::vector<int64_t> ids = {0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, kIgnore,
                                    2, 2, 0, 0, 1, 1, 0, 0, 2, 0, 0, 1};
  const torch::Tensor labels = torch::tensor(ids).view({2, 3, 4});
  torch::NoGradGuard no_grad;
  const SsaTrainingOutputs out =
      ssa.TrainingForward(logits, features, weights, labels);
  EXPECT_TRUE(torch::equal(out.logits, ssa.Forward(logits, features, weights)));
  EXPECT_TRUE(torch::equal(out.coarse_logits, logits));

  const SsaParameters ref(*owner);
  const std::map<std::string, torch::Tensor>& p = ref.tensors;
  auto mlp = [&ref](const std::string& name, const torch::Tensor& x) {
    return ref.Mlp(name, x);
  };
  const torch::Tensor pos = ref.PositionFeatures(features);
  // get_gt_center: mean of x over the pixels of each class present.
  auto class_means = [&](const torch::Tensor& x, const torch::Tensor& y,
                         torch::Tensor centers) {
    for (int64_t k = 0; k < kK; ++k) {
      const torch::Tensor mask = y.eq(k).unsqueeze(1).to(torch::kFloat);
      if (mask.sum().item<float>() == 0) continue;
      centers[k] = (x * mask).sum({0, 2, 3}) / mask.sum();
    }
    return centers;
  };
  const torch::Tensor proto = weights.view({kK, kC});
  const torch::Tensor semantic = class_means(features, labels, proto.clone());
  const torch::Tensor gt_proto =
      mlp("gt_center_content_proj", torch::cat({semantic, proto}, 1));
  std::vector<torch::Tensor> per_image;
  for (int64_t i = 0; i < 2; ++i) {
    per_image.push_back(class_means(pos.slice(0, i, i + 1),
                                    labels.slice(0, i, i + 1),
                                    p.at("center_pos.weight").clone()));
  }
  const torch::Tensor gt_pos =
      mlp("gt_center_pos_proj",
          torch::cat({torch::stack(per_image),
                      p.at("center_pos.weight").unsqueeze(0).repeat({2, 1, 1})},
                     -1));
  const torch::Tensor center = (gt_proto.unsqueeze(0) + gt_pos)
                                   .matmul(p.at("gt_center_proj.weight").t());
  EXPECT_LE(RelativeError(out.gt_prototypes,
                          gt_proto.unsqueeze(0).expand({2, kK, kC})),
            1e-5);
  EXPECT_LE(RelativeError(out.gt_positions, gt_pos), 1e-5);
  EXPECT_LE(
      RelativeError(out.gt_logits, ssa::CosineLogits(features + pos, center)),
      1e-5);
}

// What the ground-truth branch's loss trains: the classifier's weights
// (both halves of the prototype MLP's input are the weights where a class
// has no pixel, and the weights are never detached in the concatenation),
// center_pos (likewise), get_feat_pos and the features themselves.
TEST(SsaTest, GroundTruthBranchTrainsTheSharedParameters) {
  constexpr int64_t kC = 8, kK = 4;
  const auto owner = std::make_shared<torch::nn::Module>();
  SsaClassifier ssa(*owner, kC, kK);
  Randomize(*owner, 27);
  const torch::Tensor logits = torch::randn({2, kK, 3, 4});
  const torch::Tensor features = torch::randn({2, kC, 3, 4}).requires_grad_();
  const torch::Tensor weights = torch::randn({kK, kC, 1, 1}).requires_grad_();
  const torch::Tensor labels =
      torch::randint(0, kK - 1, {2, 3, 4}, torch::kLong);
  ssa.TrainingForward(logits, features, weights, labels)
      .gt_logits.sum()
      .backward();
  for (const auto& item : owner->named_parameters()) {
    const bool gt_or_shared =
        item.key().find("gt_center_") != std::string::npos ||
        item.key() == "center_pos.weight" ||
        item.key().rfind("get_feat_pos.", 0) == 0;
    const bool reached = item.value().grad().defined() &&
                         item.value().grad().abs().sum().item<float>() > 0;
    EXPECT_EQ(reached, gt_or_shared) << item.key();
  }
  ASSERT_TRUE(weights.grad().defined());
  // Class 3 has no pixel: its weight enters twice, once detached.
  EXPECT_GT(weights.grad()[3].abs().sum().item<float>(), 0);
  ASSERT_TRUE(features.grad().defined());
  EXPECT_GT(features.grad().abs().sum().item<float>(), 0);
}

// The head against the independent Python reference on the same weights
// and features: the reconstruction, then the logits.
using CgrSegHeadReferenceTest = cgrseg_testing::ReferenceTest;

struct ReferenceCase {
  const char* name;
  CgrSegVariant variant;
  CgrSegClassifier classifier;
};

TEST_F(CgrSegHeadReferenceTest, MatchesPythonReference) {
  for (const ReferenceCase& c :
       {ReferenceCase{"t_dpg", CgrSegVariant::kT, CgrSegClassifier::kDpg},
        ReferenceCase{"t_ssa", CgrSegVariant::kT, CgrSegClassifier::kSsa},
        ReferenceCase{"b_ssa", CgrSegVariant::kB, CgrSegClassifier::kSsa},
        ReferenceCase{"l_dpg", CgrSegVariant::kL, CgrSegClassifier::kDpg},
        ReferenceCase{"t_dpg_512", CgrSegVariant::kT,
                      CgrSegClassifier::kDpg}}) {
    SCOPED_TRACE(c.name);
    const auto record = Case(c.name);
    ASSERT_FALSE(record.empty());
    CgrSegHead head(CgrSegHeadConfigFor(c.variant, c.classifier, 150));
    const absl::Status loaded =
        LoadStateDict(StateOf(record), c.name, head.get());
    ASSERT_TRUE(loaded.ok()) << loaded;
    head->eval();
    const std::vector<torch::Tensor> features = FeaturesOf(record);
    const torch::Tensor reconstruction =
        Infer([&] { return head->Reconstruct(features); });
    EXPECT_LE(RelativeError(reconstruction, record.at("reconstruction")), 1e-5);
    const torch::Tensor logits = Infer([&] { return head->forward(features); });
    ASSERT_EQ(logits.sizes(), record.at("logits").sizes());
    EXPECT_LE(RelativeError(logits, record.at("logits")), 1e-5);
    // The rewritten head as the server runs it.
    head->PrepareForInference();
    const torch::Tensor prepared =
        Infer([&] { return head->forward(features); });
    EXPECT_LE(RelativeError(prepared, record.at("logits")), 1e-5);
  }
}

}  // namespace
}  // namespace segserve
