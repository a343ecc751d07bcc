#include "tools/segload/load_report.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

LoadStepResult ClosedStep() {
  LoadStepResult step;
  step.concurrency = 16;
  step.elapsed_s = 0.5;
  step.ok = 1;
  step.failed = 1;
  step.throughput_rps = 2;
  step.latency_us = {1500, 1600, 1700, 1800, 1900, 1550.5};
  step.client_serialize_us = 3.25;
  step.client_wait_us = 1400;
  step.client_deserialize_us = 150;
  step.errors["UNAVAILABLE"] = 1;
  step.server_queue_us = 10;
  step.server_preprocess_us = 20;
  step.server_inference_us = 30;
  step.server_postprocess_us = 40;
  step.mean_batch_size = 2;
  step.targets = {{1, 0}, {0, 1}};
  step.windows = 4;
  step.stability_checked = true;
  step.stable = true;
  return step;
}

LoadStepResult OpenStep() {
  LoadStepResult step;
  step.rate_rps = 12.5;
  step.elapsed_s = 2;
  step.ok = 25;
  step.throughput_rps = 12.5;
  step.latency_us = {100, 200, 300, 400, 500, 150};
  step.sent = 26;
  step.late_sends = 3;
  step.max_send_lag_us = 4500;
  step.windows = 1;
  step.targets = {{25, 0}};  // Only the first target saw requests.
  return step;
}

LoadReport Report() {
  LoadReport report;
  report.steps = {ClosedStep(), OpenStep()};
  report.targets = {"h:1", "h:2"};
  report.config = {{"targets", "[\"h:1\",\"h:2\"]"}, {"raw", "false"}};
  return report;
}

TEST(LoadReportJsonTest, Layout) {
  EXPECT_EQ(
      LoadReportJson(Report()),
      "{\"steps\":["
      "{\"concurrency\":16,\"rate\":null,\"throughput_rps\":2,"
      "\"duration_s\":0.5,\"ok\":1,\"failed\":1,\"sent\":null,"
      "\"late_sends\":null,\"max_send_lag_us\":null,\"windows\":4,"
      "\"stable\":true,"
      "\"latency_us\":{\"p50\":1500,\"p90\":1600,\"p95\":1700,\"p99\":1800,"
      "\"max\":1900,\"mean\":1550.5},"
      "\"failed_latency_us\":{},"
      "\"client_us\":{\"serialize\":3.25,\"wait\":1400,\"deserialize\":150},"
      "\"errors\":{\"UNAVAILABLE\":1},"
      "\"server_us\":{\"queue\":10,\"preprocess\":20,\"inference\":30,"
      "\"postprocess\":40},\"mean_batch_size\":2,"
      "\"targets\":[{\"target\":\"h:1\",\"ok\":1,\"failed\":0},"
      "{\"target\":\"h:2\",\"ok\":0,\"failed\":1}]},"
      "{\"concurrency\":null,\"rate\":12.5,\"throughput_rps\":12.5,"
      "\"duration_s\":2,\"ok\":25,\"failed\":0,\"sent\":26,\"late_sends\":3,"
      "\"max_send_lag_us\":4500,\"windows\":1,\"stable\":null,"
      "\"latency_us\":{\"p50\":100,\"p90\":200,\"p95\":300,\"p99\":400,"
      "\"max\":500,\"mean\":150},"
      "\"failed_latency_us\":{},"
      "\"client_us\":{\"serialize\":0,\"wait\":0,\"deserialize\":0},"
      "\"errors\":{},"
      "\"server_us\":{\"queue\":0,\"preprocess\":0,\"inference\":0,"
      "\"postprocess\":0},\"mean_batch_size\":0,"
      "\"targets\":[{\"target\":\"h:1\",\"ok\":25,\"failed\":0},"
      "{\"target\":\"h:2\",\"ok\":0,\"failed\":0}]}],"
      "\"config\":{\"targets\":[\"h:1\",\"h:2\"],\"raw\":false}}\n");
}

TEST(LoadReportCsvTest, HeaderAndRows) {
  const std::vector<std::string> lines =
      absl::StrSplit(LoadReportCsv(Report()), '\n');
  ASSERT_EQ(lines.size(), 4u);  // Header, two steps, the final newline.
  EXPECT_EQ(lines[0],
            "concurrency,rate,throughput_rps,duration_s,ok,failed,sent,"
            "late_sends,max_send_lag_us,windows,stable,p50_us,p90_us,p95_us,"
            "p99_us,max_us,mean_us,client_serialize_us,client_wait_us,"
            "client_deserialize_us,server_queue_us,server_preprocess_us,"
            "server_inference_us,server_postprocess_us,mean_batch_size,"
            "errors");
  EXPECT_EQ(lines[1],
            "16,,2,0.5,1,1,,,,4,true,1500,1600,1700,1800,1900,1550.5,3.25,"
            "1400,150,10,20,30,40,2,UNAVAILABLE=1");
  EXPECT_EQ(lines[2],
            ",12.5,12.5,2,25,0,26,3,4500,1,,100,200,300,400,500,150,0,0,0,0,"
            "0,0,0,0,");
  EXPECT_EQ(lines[3], "");
  // Every line has as many fields as the header.
  auto fields = [](const std::string& line) {
    return std::vector<std::string>(absl::StrSplit(line, ',')).size();
  };
  EXPECT_EQ(fields(lines[1]), fields(lines[0]));
  EXPECT_EQ(fields(lines[2]), fields(lines[0]));
}

TEST(LoadReportCsvTest, SeveralErrorsStayInOneField) {
  LoadStepResult step = ClosedStep();
  step.errors["DEADLINE_EXCEEDED"] = 4;
  LoadReport report;
  report.steps = {step};
  EXPECT_THAT(LoadReportCsv(report),
              HasSubstr(",DEADLINE_EXCEEDED=4;UNAVAILABLE=1\n"));
}

TEST(FormatStepRowTest, Columns) {
  const std::string closed = FormatStepRow(ClosedStep(), false);
  EXPECT_THAT(closed, StartsWith("     16       2.0     1.50     1.60     "
                                 "1.70     1.80     1.90 |   0.003     1.40"
                                 "    0.150 |"));
  EXPECT_THAT(closed, HasSubstr("|    4      - | UNAVAILABLE=1"));
  LoadStepResult unstable = ClosedStep();
  unstable.stable = false;
  EXPECT_THAT(FormatStepRow(unstable, false), HasSubstr("|   4*      - |"));
  const std::string open = FormatStepRow(OpenStep(), true);
  EXPECT_THAT(open, StartsWith("   12.5      12.5"));
  EXPECT_THAT(open, HasSubstr("|    1      3 | none"));
  EXPECT_THAT(FormatStepHeader(true), StartsWith(" rate/s     req/s"));
  EXPECT_THAT(FormatStepHeader(false), StartsWith("   conc     req/s"));
}

TEST(JsonTest, StringsAndNumbers) {
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(JsonNumber(0.125), "0.125");
  EXPECT_EQ(JsonNumber(1234567), "1.23457e+06");
  EXPECT_EQ(JsonNumber(std::nan("")), "null");
}

}  // namespace
}  // namespace segserve
