#include "tools/segload/load_parse.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace segserve {
namespace {

constexpr int kMaxTargets = 64;
constexpr int kMaxSide = 16384;

// The comma-separated items of `text` with blanks trimmed; empty items (a
// trailing comma) are dropped.
std::vector<absl::string_view> Items(absl::string_view text) {
  std::vector<absl::string_view> items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

bool ParseFinite(absl::string_view text, double* value) {
  return absl::SimpleAtod(text, value) && std::isfinite(*value);
}

class LevelParser {
 public:
  LevelParser(absl::string_view flag, double min, double max, bool integer)
      : flag_(flag), min_(min), max_(max), integer_(integer) {}

  absl::Status ParseItem(absl::string_view item) {
    const std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    if (parts.size() == 1) {
      double value = 0;
      if (!ParseFinite(parts[0], &value)) return Bad(item, "not a number");
      return Add(item, value);
    }
    if (parts.size() > 3) return Bad(item, "too many ':'");
    double start = 0, end = 0;
    if (!ParseFinite(parts[0], &start) || !ParseFinite(parts[1], &end)) {
      return Bad(item, "the range's start or end is not a number");
    }
    if (start > end) return Bad(item, "the range's start is above its end");
    bool multiply = false;
    double step = 1;
    if (parts.size() == 3) {
      absl::string_view step_text = parts[2];
      if (!step_text.empty() && (step_text[0] == 'x' || step_text[0] == '+')) {
        multiply = step_text[0] == 'x';
        step_text.remove_prefix(1);
      }
      if (!ParseFinite(step_text, &step)) {
        return Bad(item, "the step is not xFACTOR, +STEP or STEP");
      }
      if (multiply ? !(step > 1) : !(step > 0)) {
        return Bad(
            item, multiply ? "the factor must be > 1" : "the step must be > 0");
      }
    }
    if (multiply && !(start > 0)) {
      return Bad(item, "a multiplying range must start above 0");
    }
    const double tolerance = 1e-9 * std::max(1.0, std::abs(end));
    for (int i = 0;; ++i) {
      // Computed from the start each time (not accumulated) so that
      // fractional steps do not drift past the end.
      double value = multiply ? start * std::pow(step, i) : start + i * step;
      if (value > end + tolerance) break;
      if (std::abs(value - end) <= tolerance) value = end;
      SEGSERVE_RETURN_IF_ERROR(Add(item, value));
    }
    return absl::OkStatus();
  }

  std::vector<double> TakeLevels() { return std::move(levels_); }

 private:
  absl::Status Add(absl::string_view item, double value) {
    if (integer_ && value != std::floor(value)) {
      return Bad(item, absl::StrCat("it gives ", value, ", not an integer"));
    }
    if (value < min_ || value > max_) {
      return Bad(item, absl::StrCat("it gives ", value, ", outside ", min_,
                                    "..", max_));
    }
    if (levels_.size() >= static_cast<size_t>(kMaxLoadLevels)) {
      return Bad(item, absl::StrCat("more than ", kMaxLoadLevels, " levels"));
    }
    levels_.push_back(value);
    return absl::OkStatus();
  }

  absl::Status Bad(absl::string_view item, absl::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(
        flag_, " has '", item, "': ", why,
        "; use comma-separated numbers or ranges START:END[:xFACTOR|:+STEP] "
        "with values ",
        min_, "..", max_, integer_ ? " (integers)" : ""));
  }

  const absl::string_view flag_;
  const double min_;
  const double max_;
  const bool integer_;
  std::vector<double> levels_;
};

}  // namespace

absl::StatusOr<std::vector<double>> ParseLoadLevels(absl::string_view text,
                                                    absl::string_view flag,
                                                    double min, double max,
                                                    bool integer) {
  LevelParser parser(flag, min, max, integer);
  const std::vector<absl::string_view> items = Items(text);
  if (items.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " lists no level"));
  }
  for (absl::string_view item : items) {
    SEGSERVE_RETURN_IF_ERROR(parser.ParseItem(item));
  }
  return parser.TakeLevels();
}

absl::StatusOr<std::vector<int>> ParseConcurrencyLevels(
    absl::string_view text) {
  SEGSERVE_ASSIGN_OR_RETURN(
      std::vector<double> levels,
      ParseLoadLevels(text, "--concurrency", 1, 1024, /*integer=*/true));
  return std::vector<int>(levels.begin(), levels.end());
}

absl::StatusOr<std::vector<double>> ParseRates(absl::string_view text) {
  return ParseLoadLevels(text, "--rate", 0.001, 1e6, /*integer=*/false);
}

absl::StatusOr<std::vector<ImageDims>> ParseSizes(absl::string_view text) {
  std::vector<ImageDims> sizes;
  for (absl::string_view item : Items(text)) {
    const std::vector<absl::string_view> sides =
        absl::StrSplit(item, absl::ByAnyChar("xX"));
    ImageDims dims;
    if (sides.size() != 2 || !absl::SimpleAtoi(sides[0], &dims.width) ||
        !absl::SimpleAtoi(sides[1], &dims.height) || dims.width < 1 ||
        dims.height < 1 || dims.width > kMaxSide || dims.height > kMaxSide) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sizes has '", item,
          "'; use comma-separated WIDTHxHEIGHT with each side 1..", kMaxSide));
    }
    sizes.push_back(dims);
  }
  if (sizes.empty()) {
    return absl::InvalidArgumentError(
        "--sizes lists no size; use WIDTHxHEIGHT[,WIDTHxHEIGHT...]");
  }
  return sizes;
}

absl::StatusOr<std::vector<std::string>> ParseTargets(absl::string_view text) {
  std::vector<std::string> targets;
  for (absl::string_view item : Items(text)) {
    targets.emplace_back(item);
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(
        "--target lists no server; use host:port[,host:port...]");
  }
  if (targets.size() > static_cast<size_t>(kMaxTargets)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--target lists ", targets.size(), " servers; at most ", kMaxTargets));
  }
  return targets;
}

}  // namespace segserve
