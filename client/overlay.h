#ifndef SEGSERVE_CLIENT_OVERLAY_H_
#define SEGSERVE_CLIENT_OVERLAY_H_

#include "opencv2/core/mat.hpp"

namespace segserve {

// The fixed display color of a class id, as BGR. Colors step around the hue
// circle by the golden ratio, so neighbouring ids (and any few ids) look
// clearly different; saturation and brightness alternate so ids far apart do
// not repeat exactly. The same id always gets the same color; negative ids
// get id 0's. Thread-safe.
cv::Vec3b ClassColor(int class_id);

// Blends each pixel of `bgr_image` (CV_8UC3) with its class color:
// out = (1 - alpha) * image + alpha * ClassColor(label). `labels` is CV_8UC1 or
// CV_16UC1; when its size differs from the image's it is resized with
// nearest-neighbour first. alpha is clamped to [0, 1]. Returns a new CV_8UC3
// image, or an empty Mat when an input is empty or of another type.
// Thread-safe.
cv::Mat RenderOverlay(const cv::Mat& bgr_image, const cv::Mat& labels,
                      float alpha);

}  // namespace segserve

#endif  // SEGSERVE_CLIENT_OVERLAY_H_
