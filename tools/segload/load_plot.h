#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_PLOT_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_PLOT_H_

#include <string>
#include <vector>

#include "absl/types/span.h"
#include "tools/segload/load_stats.h"

namespace segserve {

// segload's --plot: latency against throughput as a standalone SVG. Pure
// functions: thread-safe.

// Axis ticks from 0 up to the first tick at or above `max`, spaced by 1, 2
// or 5 times a power of ten so that there are at most about `intervals`
// intervals. {0, 1} when max <= 0 or is not finite.
std::vector<double> NiceTicks(double max, int intervals = 5);

// A 720x480 SVG: x is throughput (requests/s), y latency (ms); one line with
// markers for p50 and one for p99, in step order, each marker labelled with
// its load level and carrying a <title> tooltip. Axes with ticks, axis
// labels, a legend and `title` (escaped). Steps without a successful response
// are left out; with none left the plot says "no data".
std::string LatencyThroughputSvg(absl::Span<const LoadStepResult> steps,
                                 const std::string& title);

// `text` with &, <, >, " and ' escaped for XML.
std::string XmlEscape(const std::string& text);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_PLOT_H_
