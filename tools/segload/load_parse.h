#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_PARSE_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_PARSE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segserve {

// Parsers of segload's list-valued flags; kept apart from its main() so they
// can be tested. Pure functions: thread-safe. Every error is INVALID_ARGUMENT
// and names the flag, the bad part and what is allowed.

// The most load levels one list may expand to (each is a step of the run).
inline constexpr int kMaxLoadLevels = 256;

// A comma-separated list of levels, each a number or a range:
//   "1,4,16"     the numbers as given, in that order
//   "1:64:x2"    1, 2, 4, ..., 64: multiply by the factor (> 1)
//   "1:16:+4"    1, 5, 9, 13: add the step (> 0); "1:16:4" is the same
//   "1:4"        1, 2, 3, 4: step +1
// A range includes its end when a step lands on it (within 1e-9 relative,
// for fractional rates) and never goes past it; start <= end. Every value
// must lie in [min, max]; `integer` refuses fractional values. `flag` names
// the flag in messages ("--concurrency"). At most kMaxLoadLevels values.
absl::StatusOr<std::vector<double>> ParseLoadLevels(absl::string_view text,
                                                    absl::string_view flag,
                                                    double min, double max,
                                                    bool integer);

// --concurrency: integers 1..1024.
absl::StatusOr<std::vector<int>> ParseConcurrencyLevels(absl::string_view text);

// --rate: requests per second, (0, 1e6]; at least 0.001.
absl::StatusOr<std::vector<double>> ParseRates(absl::string_view text);

// One synthetic image size.
struct ImageDims {
  int width = 0;
  int height = 0;
};

// --sizes: "512x512,1024x768"; each side 1..16384.
absl::StatusOr<std::vector<ImageDims>> ParseSizes(absl::string_view text);

// --target: "a:1,b:2": one or more gRPC targets (host:port, dns:///name:port,
// unix:/path, ipv4:addr:port), blanks around items ignored, at most 64.
// A repeated target is kept (it gets that many shares of the requests).
absl::StatusOr<std::vector<std::string>> ParseTargets(absl::string_view text);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_PARSE_H_
