#include "tools/segload/load_plot.h"

#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

LoadStepResult Step(int concurrency, double throughput, int64_t p50_us,
                    int64_t p99_us) {
  LoadStepResult step;
  step.concurrency = concurrency;
  step.ok = 100;
  step.throughput_rps = throughput;
  step.latency_us.p50 = p50_us;
  step.latency_us.p99 = p99_us;
  return step;
}

struct Point {
  double x;
  double y;
};

// The centres of the markers, in document order.
std::vector<Point> Markers(const std::string& svg) {
  static const std::regex kCircle(
      "<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\" r=\"4\" fill=\"[^\"]+\">"
      "<title>");
  std::vector<Point> points;
  for (std::sregex_iterator it(svg.begin(), svg.end(), kCircle), end; it != end;
       ++it) {
    points.push_back(
        {std::atof((*it)[1].str().c_str()), std::atof((*it)[2].str().c_str())});
  }
  return points;
}

TEST(NiceTicksTest, OneTwoFive) {
  EXPECT_THAT(NiceTicks(10), ElementsAre(0, 2, 4, 6, 8, 10));
  EXPECT_THAT(NiceTicks(9.3), ElementsAre(0, 2, 4, 6, 8, 10));
  EXPECT_THAT(NiceTicks(1234), ElementsAre(0, 500, 1000, 1500));
  EXPECT_THAT(NiceTicks(0.37), ElementsAre(0, DoubleEq(0.1), DoubleEq(0.2),
                                           DoubleEq(0.3), DoubleEq(0.4)));
  EXPECT_THAT(NiceTicks(0), ElementsAre(0, 1));
  EXPECT_THAT(NiceTicks(-3), ElementsAre(0, 1));
}

TEST(LatencyThroughputSvgTest, HasEveryPointAxesAndLegend) {
  const std::vector<LoadStepResult> steps = {Step(1, 100, 2000, 5000),
                                             Step(4, 350, 4000, 9000),
                                             Step(16, 400, 15000, 40000)};
  const std::string svg = LatencyThroughputSvg(steps, "run <a & b>");
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_THAT(svg, HasSubstr(">run &lt;a &amp; b&gt;</text>"));
  EXPECT_THAT(svg, HasSubstr(">throughput (requests/s)</text>"));
  EXPECT_THAT(svg, HasSubstr(">latency (ms)</text>"));
  EXPECT_THAT(svg, HasSubstr(">p50 latency</text>"));
  EXPECT_THAT(svg, HasSubstr(">p99 latency</text>"));
  // Ticks: x 0..400 by 100, y 0..40 ms by 10.
  EXPECT_THAT(svg, HasSubstr("text-anchor=\"middle\">400</text>"));
  EXPECT_THAT(svg, HasSubstr("text-anchor=\"end\">40</text>"));
  EXPECT_THAT(svg, HasSubstr("<title>concurrency 4: 350.0 req/s, p99 latency "
                             "9.00 ms</title>"));
  EXPECT_THAT(svg, HasSubstr(">c16</text>"));
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");

  // Three p50 markers then three p99 markers, placed by their values: x from
  // 80 (0 req/s) to 670 (400 req/s), y from 410 (0 ms) up to 50 (40 ms).
  const std::vector<Point> points = Markers(svg);
  ASSERT_EQ(points.size(), 6u);
  EXPECT_NEAR(points[0].x, 80 + 100.0 / 400 * 590, 0.1);
  EXPECT_NEAR(points[0].y, 410 - 2.0 / 40 * 360, 0.1);
  EXPECT_NEAR(points[5].x, 670, 0.1);
  EXPECT_NEAR(points[5].y, 50, 0.1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(points[i].x, points[i + 3].x);  // Same step, same throughput.
    EXPECT_GT(points[i].y, points[i + 3].y);  // p99 above p50.
  }
}

TEST(LatencyThroughputSvgTest, RatesAndFailedStepsAndNoData) {
  LoadStepResult rate = Step(0, 50, 1000, 2000);
  rate.rate_rps = 50;
  LoadStepResult failed = Step(8, 0, 0, 0);
  failed.ok = 0;
  const std::string svg = LatencyThroughputSvg({rate, failed}, "t");
  EXPECT_EQ(Markers(svg).size(), 2u);
  EXPECT_THAT(svg, HasSubstr("<title>rate 50/s: 50.0 req/s"));
  EXPECT_THAT(svg, Not(HasSubstr("concurrency 8")));
  const std::string empty = LatencyThroughputSvg({failed}, "t");
  EXPECT_TRUE(Markers(empty).empty());
  EXPECT_THAT(empty, HasSubstr(">no data</text>"));
}

TEST(XmlEscapeTest, Escapes) {
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
}

}  // namespace
}  // namespace segserve
