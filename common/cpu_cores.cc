#include "common/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace segserve {
namespace {

std::string ReadSmallFile(const char* path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

int AffinityCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

std::optional<double> ParseCgroupV2CpuMax(const std::string& text) {
  std::vector<std::string> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (fields.size() != 2 || fields[0] == "max") return std::nullopt;
  double quota = 0;
  double period = 0;
  if (!absl::SimpleAtod(fields[0], &quota) ||
      !absl::SimpleAtod(fields[1], &period) || quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return quota / period;
}

std::optional<double> ParseCgroupV1Quota(const std::string& quota_us,
                                         const std::string& period_us) {
  double quota = 0;
  double period = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(quota_us), &quota) ||
      !absl::SimpleAtod(absl::StripAsciiWhitespace(period_us), &period) ||
      quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return quota / period;
}

int CoresFromQuota(double quota) {
  // Clamped first: a quota of billions of cores is "no limit", not UB.
  const double cores = std::min(std::ceil(quota - 1e-9), 1e6);
  return std::max(1, static_cast<int>(cores));
}

int DetectUsableCores() {
  int cores = AffinityCores();
  std::optional<double> quota =
      ParseCgroupV2CpuMax(ReadSmallFile("/sys/fs/cgroup/cpu.max"));
  if (!quota) {
    quota = ParseCgroupV1Quota(
        ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        ReadSmallFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  }
  if (quota) cores = std::min(cores, CoresFromQuota(*quota));
  return std::max(1, cores);
}

}  // namespace segserve
