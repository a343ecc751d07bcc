#include "common/cpu_cores.h"

#include <thread>

#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(CpuCoresTest, ReadsCgroupV2Quota) {
  EXPECT_DOUBLE_EQ(*ParseCgroupV2CpuMax("200000 100000\n"), 2.0);
  EXPECT_DOUBLE_EQ(*ParseCgroupV2CpuMax("150000 100000"), 1.5);
  EXPECT_FALSE(ParseCgroupV2CpuMax("max 100000\n").has_value());
  EXPECT_FALSE(ParseCgroupV2CpuMax("").has_value());
  EXPECT_FALSE(ParseCgroupV2CpuMax("garbage").has_value());
  EXPECT_FALSE(ParseCgroupV2CpuMax("0 100000").has_value());
}

TEST(CpuCoresTest, ReadsCgroupV1Quota) {
  EXPECT_DOUBLE_EQ(*ParseCgroupV1Quota("50000\n", "100000\n"), 0.5);
  EXPECT_FALSE(ParseCgroupV1Quota("-1\n", "100000\n").has_value());
  EXPECT_FALSE(ParseCgroupV1Quota("", "").has_value());
}

TEST(CpuCoresTest, RoundsQuotaUpLikeTheDownwardApi) {
  EXPECT_EQ(CoresFromQuota(0.2), 1);
  EXPECT_EQ(CoresFromQuota(1.0), 1);
  EXPECT_EQ(CoresFromQuota(1.5), 2);
  EXPECT_EQ(CoresFromQuota(2.0), 2);
  EXPECT_EQ(CoresFromQuota(1.7e10), 1000000);
}

TEST(CpuCoresTest, DetectedCoresAreWithinTheMachine) {
  const int cores = DetectUsableCores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace segserve
