#ifndef SEGSERVE_COMMON_CPU_CORES_H_
#define SEGSERVE_COMMON_CPU_CORES_H_

#include <optional>
#include <string>

namespace segserve {

// The cores this process may use: the fewest of the CPUs in its affinity
// mask and its cgroup's CPU quota (rounded up), as a container runtime or
// Kubernetes CPU limit sets them. std::thread::hardware_concurrency() counts
// the node's cores instead, so on a 64-core node a pod limited to 2 CPUs
// would start 64 OpenMP threads, throttled to the time of 2. Never below 1.
int DetectUsableCores();

// The quota in cores of a cgroup v2 `cpu.max` file ("200000 100000" -> 2.0;
// "max 100000" -> none) and of cgroup v1's cpu.cfs_quota_us /
// cpu.cfs_period_us ("-1" -> none). nullopt when there is no limit or the
// text is not understood.
std::optional<double> ParseCgroupV2CpuMax(const std::string& text);
std::optional<double> ParseCgroupV1Quota(const std::string& quota_us,
                                         const std::string& period_us);

// Cores from a quota, as the Kubernetes downward API rounds limits.cpu with
// divisor 1: up to a whole core (1.5 -> 2, 0.2 -> 1).
int CoresFromQuota(double quota);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_CPU_CORES_H_
