// tools/faults/faults_table.py --bench on JSON written by epcomm-bench's own writer (to_json with
// --telemetry rows), so the README table's script and the benchmark cannot drift apart. Skipped
// where python3 is absent.
#include <gtest/gtest.h>

#include <string>

#include "bench/report.hpp"
#include "bench/telemetry.hpp"
#include "python_tool.hpp"

namespace epcomm::bench {
namespace {

// The script's markdown for `report` written as JSON; "" when python3 is missing or the run failed
// (the failure's output is printed).
std::string markdown_of(const RunReport& report) {
  const test::TempFile json(to_json(report));
  std::string text;
  const int rc = test::run_python_tool("tools/faults/faults_table.py", "--bench " + json.path, text);
  if (rc < 0) return "";
  EXPECT_EQ(rc, 0) << text;
  return rc == 0 ? text : "";
}

RunReport two_rows() {
  RunReport report;
  report.workload = "ll-small";
  const RowTelemetry straggler = summarize_telemetry({{0, {"low-latency dispatch", 2, 64, 0, 30000, 3}},
                                                      {1, {"low-latency dispatch", 2, 64, 0, 50000, 4}},
                                                      {2, {"low-latency dispatch", 0, 64, 0, 20000, 1}}},
                                                     60);
  const RowTelemetry quiet = summarize_telemetry({{0, {"low-latency combine", 1, 4096, 4096, 0, 0}}}, 60);
  report.rows = {
      ResultRow{.impl = "nccl", .op = "dispatch", .dtype = "fp8", .tokens = 128},
      ResultRow{.impl = "epcomm", .op = "dispatch", .dtype = "fp8", .tokens = 128, .telemetry = straggler},
      ResultRow{.impl = "epcomm", .op = "combine", .dtype = "bf16", .tokens = 128, .telemetry = quiet}};
  return report;
}

TEST(BenchTelemetryTable, OneLinePerRowWithTelemetry) {
  if (std::system("python3 --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  const std::string md = markdown_of(two_rows());
  EXPECT_NE(md.find("### Slowest peer (per-peer telemetry)"), std::string::npos) << md;
  // Rank 2 was waited on 80 us of the row's 100 us.
  EXPECT_NE(md.find("| ll-small | epcomm dispatch fp8 0 SMs 128 tokens | 60 | rank 2 | 80.0 us | 80% | "
                    "low-latency dispatch: rank 2 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| ll-small | epcomm combine bf16 0 SMs 128 tokens | 60 | none (no wait polled) |  |  | "
                    "low-latency combine: none |"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("nccl"), std::string::npos) << md;  // a row without telemetry has no line
}

TEST(BenchTelemetryTable, ARunWithoutTelemetrySaysHowToGetIt) {
  if (std::system("python3 --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  RunReport report = two_rows();
  report.rows.resize(1);
  EXPECT_NE(markdown_of(report).find("no row carries telemetry (run epcomm-bench with --telemetry)"),
            std::string::npos);
}

}  // namespace
}  // namespace epcomm::bench
