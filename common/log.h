#ifndef SEGSERVE_COMMON_LOG_H_
#define SEGSERVE_COMMON_LOG_H_

#include <cstdio>
#include <sstream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace segserve {

enum class LogLevel { kInfo, kWarning, kError };

// One log line: "2026-11-22T10:00:00.123456Z INFO  file.cc:42] message",
// written to stderr in a single call so lines from threads do not interleave.
class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line) {
    static constexpr const char* kNames[] = {"INFO ", "WARN ", "ERROR"};
    const char* base = file;
    for (const char* p = file; *p; ++p) {
      if (*p == '/') base = p + 1;
    }
    stream_ << absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                absl::UTCTimeZone())
            << ' ' << kNames[int(level)] << ' ' << base << ':' << line << "] ";
  }
  ~LogLine() {
    stream_ << '\n';
    const std::string text = stream_.str();
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace segserve

#define SEGSERVE_LOG(level)                                               \
  ::segserve::LogLine(::segserve::LogLevel::k##level, __FILE__, __LINE__) \
      .stream()

#endif  // SEGSERVE_COMMON_LOG_H_
