#include "tools/segload/load_plot.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace segserve {
namespace {

// The plot area inside the 720x480 canvas.
constexpr double kWidth = 720, kHeight = 480;
constexpr double kLeft = 80, kRight = 670, kTop = 50, kBottom = 410;

struct Series {
  const char* name;
  const char* color;
  int64_t LatencySummary::*field;
};
constexpr Series kSeries[] = {
    {"p50 latency", "#1f77b4", &LatencySummary::p50},
    {"p99 latency", "#d62728", &LatencySummary::p99},
};

std::string Level(const LoadStepResult& step) {
  return step.rate_rps > 0 ? absl::StrFormat("%g/s", step.rate_rps)
                           : absl::StrCat("c", step.concurrency);
}

std::string LevelLong(const LoadStepResult& step) {
  return step.rate_rps > 0 ? absl::StrFormat("rate %g/s", step.rate_rps)
                           : absl::StrCat("concurrency ", step.concurrency);
}

class Canvas {
 public:
  Canvas(double x_max, double y_max) : x_max_(x_max), y_max_(y_max) {}
  double X(double x) const { return kLeft + x / x_max_ * (kRight - kLeft); }
  double Y(double y) const { return kBottom - y / y_max_ * (kBottom - kTop); }

 private:
  const double x_max_;
  const double y_max_;
};

void AppendAxes(const std::vector<double>& x_ticks,
                const std::vector<double>& y_ticks, const Canvas& canvas,
                std::string* svg) {
  for (const double x : x_ticks) {
    const double px = canvas.X(x);
    absl::StrAppendFormat(
        svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#e0e0e0\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\" stroke=\"black\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
        "text-anchor=\"middle\">%g</text>\n",
        px, kTop, px, kBottom, px, kBottom, px, kBottom + 5, px, kBottom + 20,
        x);
  }
  for (const double y : y_ticks) {
    const double py = canvas.Y(y);
    absl::StrAppendFormat(
        svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#e0e0e0\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\" stroke=\"black\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
        "text-anchor=\"end\">%g</text>\n",
        kLeft, py, kRight, py, kLeft - 5, py, kLeft, py, kLeft - 8, py + 4, y);
  }
  absl::StrAppendFormat(
      svg,
      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
      "stroke=\"black\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
      "y2=\"%.1f\" stroke=\"black\"/>\n",
      kLeft, kBottom, kRight, kBottom, kLeft, kTop, kLeft, kBottom);
  absl::StrAppendFormat(
      svg,
      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">throughput "
      "(requests/s)</text>\n<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 20 %.1f)\">latency (ms)</text>\n",
      (kLeft + kRight) / 2, kHeight - 25, (kTop + kBottom) / 2,
      (kTop + kBottom) / 2);
}

void AppendSeries(const std::vector<const LoadStepResult*>& points,
                  const Series& series, bool label_points, const Canvas& canvas,
                  std::string* svg) {
  std::vector<std::string> coordinates;
  for (const LoadStepResult* step : points) {
    coordinates.push_back(
        absl::StrFormat("%.1f,%.1f", canvas.X(step->throughput_rps),
                        canvas.Y(step->latency_us.*series.field / 1000.0)));
  }
  absl::StrAppendFormat(svg,
                        "<polyline fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"2\" points=\"%s\"/>\n",
                        series.color, absl::StrJoin(coordinates, " "));
  for (const LoadStepResult* step : points) {
    const double ms = step->latency_us.*series.field / 1000.0;
    const double px = canvas.X(step->throughput_rps);
    const double py = canvas.Y(ms);
    absl::StrAppendFormat(
        svg,
        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s: "
        "%.1f req/s, %s %.2f ms</title></circle>\n",
        px, py, series.color, LevelLong(*step), step->throughput_rps,
        series.name, ms);
    if (label_points) {
      absl::StrAppendFormat(svg,
                            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                            "fill=\"%s\">%s</text>\n",
                            px + 6, py - 6, series.color, Level(*step));
    }
  }
}

void AppendLegend(std::string* svg) {
  double y = kTop + 16;
  for (const Series& series : kSeries) {
    absl::StrAppendFormat(
        svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
        "stroke-width=\"2\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" "
        "fill=\"%s\"/>\n<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
        kLeft + 12, y, kLeft + 36, y, series.color, kLeft + 24, y, series.color,
        kLeft + 44, y + 4, series.name);
    y += 18;
  }
}

}  // namespace

std::vector<double> NiceTicks(double max, int intervals) {
  if (!(max > 0) || !std::isfinite(max) || intervals < 1) return {0, 1};
  const double raw = max / intervals;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (const double factor : {1.0, 2.0, 5.0}) {
    if (factor * magnitude >= raw * (1 - 1e-9)) {
      step = factor * magnitude;
      break;
    }
  }
  std::vector<double> ticks = {0};
  while (ticks.back() < max * (1 - 1e-9)) {
    ticks.push_back(step * static_cast<double>(ticks.size()));
  }
  if (ticks.size() == 1) ticks.push_back(step);
  return ticks;
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string LatencyThroughputSvg(absl::Span<const LoadStepResult> steps,
                                 const std::string& title) {
  std::vector<const LoadStepResult*> points;
  double x_max = 0, y_max = 0;
  for (const LoadStepResult& step : steps) {
    if (step.ok <= 0) continue;
    points.push_back(&step);
    x_max = std::max(x_max, step.throughput_rps);
    y_max = std::max(y_max, step.latency_us.p99 / 1000.0);
  }
  const std::vector<double> x_ticks = NiceTicks(x_max);
  const std::vector<double> y_ticks = NiceTicks(y_max);
  const Canvas canvas(x_ticks.back(), y_ticks.back());

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%g\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">%s"
      "</text>\n",
      kWidth, kHeight, kWidth, kHeight, kWidth / 2, XmlEscape(title));
  AppendAxes(x_ticks, y_ticks, canvas, &svg);
  if (points.empty()) {
    absl::StrAppendFormat(&svg,
                          "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">no "
                          "data</text>\n",
                          (kLeft + kRight) / 2, (kTop + kBottom) / 2);
  } else {
    for (const Series& series : kSeries) {
      AppendSeries(points, series, &series == &kSeries[1], canvas, &svg);
    }
    AppendLegend(&svg);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace segserve
