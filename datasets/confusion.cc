#include "datasets/confusion.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segserve {
namespace {

int LabelAt(const cv::Mat& labels, int y, int x) {
  return labels.depth() == CV_8U ? labels.at<uint8_t>(y, x)
                                 : labels.at<uint16_t>(y, x);
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int num_classes, int ignore_label)
    : num_classes_(num_classes),
      ignore_label_(ignore_label),
      counts_(static_cast<size_t>(num_classes) * num_classes, 0) {}

absl::Status ConfusionMatrix::Add(const cv::Mat& predicted,
                                  const cv::Mat& truth) {
  if (predicted.size() != truth.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "confusion: predicted labels are ", predicted.cols, "x", predicted.rows,
        " but the truth is ", truth.cols, "x", truth.rows));
  }
  for (const cv::Mat* m : {&predicted, &truth}) {
    if (m->type() != CV_8U && m->type() != CV_16U) {
      return absl::InvalidArgumentError(
          "confusion: label maps must be CV_8U or CV_16U single-channel");
    }
  }
  for (int y = 0; y < truth.rows; ++y) {
    for (int x = 0; x < truth.cols; ++x) {
      const int t = LabelAt(truth, y, x);
      if (t == ignore_label_) continue;
      const int p = LabelAt(predicted, y, x);
      if (t >= num_classes_ || p >= num_classes_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "confusion: label ", t >= num_classes_ ? t : p, " at (", x, ", ", y,
            ") is outside 0..", num_classes_ - 1));
      }
      ++counts_[static_cast<size_t>(t) * num_classes_ + p];
    }
  }
  return absl::OkStatus();
}

void ConfusionMatrix::Merge(const ConfusionMatrix& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

double ConfusionMatrix::Iou(int c) const {
  int64_t true_total = 0;
  int64_t predicted_total = 0;
  for (int k = 0; k < num_classes_; ++k) {
    true_total += Count(c, k);
    predicted_total += Count(k, c);
  }
  const int64_t intersection = Count(c, c);
  const int64_t union_size = true_total + predicted_total - intersection;
  if (union_size == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(intersection) / static_cast<double>(union_size);
}

double ConfusionMatrix::MeanIou() const {
  double sum = 0;
  int defined = 0;
  for (int c = 0; c < num_classes_; ++c) {
    const double iou = Iou(c);
    if (std::isnan(iou)) continue;
    sum += iou;
    ++defined;
  }
  return defined == 0 ? std::numeric_limits<double>::quiet_NaN()
                      : sum / defined;
}

double ConfusionMatrix::PixelAccuracy() const {
  int64_t correct = 0;
  int64_t total = 0;
  for (int t = 0; t < num_classes_; ++t) {
    for (int p = 0; p < num_classes_; ++p) {
      total += Count(t, p);
      if (t == p) correct += Count(t, p);
    }
  }
  return total == 0 ? std::numeric_limits<double>::quiet_NaN()
                    : static_cast<double>(correct) / static_cast<double>(total);
}

double ConfusionMatrix::ForegroundIou(int background) const {
  int64_t intersection = 0;
  int64_t union_size = 0;
  for (int t = 0; t < num_classes_; ++t) {
    for (int p = 0; p < num_classes_; ++p) {
      const bool true_object = t != background;
      const bool predicted_object = p != background;
      if (true_object && predicted_object) intersection += Count(t, p);
      if (true_object || predicted_object) union_size += Count(t, p);
    }
  }
  return union_size == 0 ? std::numeric_limits<double>::quiet_NaN()
                         : static_cast<double>(intersection) /
                               static_cast<double>(union_size);
}

std::string ConfusionMatrix::Report(
    const std::vector<std::string>& class_names) const {
  std::string out;
  for (int c = 0; c < num_classes_; ++c) {
    const std::string name = c < static_cast<int>(class_names.size())
                                 ? class_names[c]
                                 : absl::StrCat("class ", c);
    absl::StrAppendFormat(&out, "  %-12s IoU %.4f\n", name, Iou(c));
  }
  absl::StrAppendFormat(
      &out, "  mIoU %.4f  pixel accuracy %.4f  foreground IoU %.4f\n",
      MeanIou(), PixelAccuracy(), ForegroundIou());
  return out;
}

}  // namespace segserve
