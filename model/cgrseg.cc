#include "model/cgrseg.h"

#include <c10/util/Exception.h>

namespace segserve {

CgrSegHeadConfig CgrSegHeadConfigFor(CgrSegVariant variant,
                                     CgrSegClassifier classifier,
                                     int64_t num_classes) {
  CgrSegHeadConfig config;
  switch (variant) {
    case CgrSegVariant::kT:
      config.in_channels = {48, 120, 224};
      config.channels = 128;
      config.band_kernel_size = 11;
      config.neck_band_kernel_size = 11;
      config.neck_depth = 5;
      break;
    case CgrSegVariant::kB:
      config.in_channels = {64, 144, 288};
      config.channels = 256;
      config.band_kernel_size = 11;
      config.neck_band_kernel_size = 11;
      config.neck_depth = 6;
      break;
    case CgrSegVariant::kL:
      config.in_channels = {80, 192, 384};
      config.channels = 256;
      config.band_kernel_size = 9;
      config.neck_band_kernel_size = 9;
      config.neck_depth = 5;
      break;
  }
  config.square_kernel_size = 3;
  config.mlp_ratio = 2;
  config.num_classes = num_classes;
  config.classifier = classifier;
  return config;
}

EfficientFormerV2Variant CgrSegBackboneFor(CgrSegVariant variant) {
  switch (variant) {
    case CgrSegVariant::kT:
      return EfficientFormerV2Variant::kS1;
    case CgrSegVariant::kB:
      return EfficientFormerV2Variant::kS2;
    case CgrSegVariant::kL:
      break;
  }
  return EfficientFormerV2Variant::kL;
}

CgrSegImpl::CgrSegImpl(CgrSegVariant variant, CgrSegClassifier classifier,
                       int64_t num_classes)
    : backbone_(register_module("backbone",
                                EfficientFormerV2(CgrSegBackboneFor(variant)))),
      decode_head_(register_module(
          "decode_head",
          CgrSegHead(CgrSegHeadConfigFor(variant, classifier, num_classes)))) {
  // The head's widths and the backbone's must agree at strides 8..32.
  const std::vector<int64_t>& out = backbone_->out_channels();
  const std::vector<int64_t>& in = decode_head_->config().in_channels;
  TORCH_CHECK(
      out.size() == 4 && std::vector<int64_t>(out.begin() + 1, out.end()) == in,
      "CGRSeg: backbone and head widths disagree");
}

torch::Tensor CgrSegImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "CGRSeg: expected N x 3 x H x W",
              " input, got ", x.sizes());
  TORCH_CHECK(x.size(2) > 0 && x.size(3) > 0 &&
                  x.size(2) % kInputMultiple == 0 &&
                  x.size(3) % kInputMultiple == 0,
              "CGRSeg: input sides must be positive multiples of ",
              kInputMultiple, ", got ", x.size(2), " x ", x.size(3));
  return decode_head_->forward(backbone_->forward(x));
}

SsaTrainingOutputs CgrSegImpl::ForwardForSsaTraining(
    const torch::Tensor& x, const torch::Tensor& labels) {
  return decode_head_->ForwardForSsaTraining(backbone_->forward(x), labels);
}

torch::Tensor CgrSegImpl::ForwardWithFeatures(const torch::Tensor& x,
                                              torch::Tensor* features) {
  return decode_head_->ForwardWithFeatures(backbone_->forward(x), features);
}

}  // namespace segserve
