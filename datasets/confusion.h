// Per-class IoU, mIoU and pixel accuracy from a confusion matrix accumulated
// over many label maps (the standard semantic segmentation scores: each
// class's intersection and union are summed over the whole set before the
// ratio). Torch-free.
#ifndef SEGSERVE_DATASETS_CONFUSION_H_
#define SEGSERVE_DATASETS_CONFUSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

class ConfusionMatrix {
 public:
  // Pixels whose truth is `ignore_label` are skipped.
  explicit ConfusionMatrix(int num_classes, int ignore_label = 255);

  // Adds a predicted and a true label map (CV_8U or CV_16U, same size).
  // INVALID_ARGUMENT on a size or type mismatch, or a label outside
  // 0..num_classes-1 (other than the ignore label in the truth).
  absl::Status Add(const cv::Mat& predicted, const cv::Mat& truth);
  void Merge(const ConfusionMatrix& other);

  int num_classes() const { return num_classes_; }
  // IoU of class c; NaN when the class appears in neither truth nor
  // prediction.
  double Iou(int c) const;
  // Mean over the classes whose IoU is defined.
  double MeanIou() const;
  double PixelAccuracy() const;
  // IoU of "any class but `background`" against background: how well
  // objects are placed, whatever their class.
  double ForegroundIou(int background = 0) const;
  int64_t Count(int truth, int predicted) const {
    return counts_[static_cast<size_t>(truth) * num_classes_ + predicted];
  }

  // A table: one line per class "name  IoU", then mIoU and pixel accuracy.
  std::string Report(const std::vector<std::string>& class_names) const;

 private:
  int num_classes_;
  int ignore_label_;
  std::vector<int64_t> counts_;  // truth-major.
};

}  // namespace segserve

#endif  // SEGSERVE_DATASETS_CONFUSION_H_
