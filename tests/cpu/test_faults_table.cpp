// tools/faults/faults_table.py on JSON written by the C++ report writers (report_json, soak_json),
// so the script and the writers cannot drift apart: the markdown must hold each case's cell, the
// totals and the soak's counts and memory lines. Skipped where python3 is absent.
#include <gtest/gtest.h>

#include <string>

#include "faults/fault_cases.hpp"
#include "faults/fault_report.hpp"
#include "faults/soak_report.hpp"
#include "python_tool.hpp"

namespace epcomm::faults {
namespace {

using test::TempFile;

// Runs the script with `args`; the exit code, stdout in `out`. -1 when python3 is missing.
int run_script(const std::string& args, std::string& out) {
  return test::run_python_tool("tools/faults/faults_table.py", args, out);
}

CaseResult result(const std::string& name, bool survived) {
  const Case& c = find_case(name);
  Observation o;
  if (survived) {
    o.recorded = o.got_error = o.context_ok = o.survivor_exited = true;
    o.category = "timeout";
    o.message =
        "rank 0: low-latency dispatch timed out after 3000 ms waiting for rank 1 (counter 'rows arrived')";
    o.fault_ns = 1'000'000'000;
    o.event_ns = o.fault_ns + 3'050'000'000;
  }
  return {c, o, judge(c, o, 5000)};
}

TEST(FaultsTable, FaultMatrixCellsAndTotals) {
  const std::vector<CaseResult> results = {result("ll_dispatch.kill", true), result("notify.kill", false),
                                           result("barrier.mismatch_topk", false)};
  const TempFile json(report_json({3000, 5000, 2, "NVIDIA H200"}, results));
  std::string out;
  const int rc = run_script("--faults " + json.path, out);
  if (rc == -1) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("| phase | kill | kill+mask | stall |"), std::string::npos) << out;
  EXPECT_NE(out.find("| ll_dispatch | ok, 3050 ms |"), std::string::npos) << out;
  EXPECT_NE(out.find("| notify | **FAIL**: survivor did not end on its own"), std::string::npos) << out;
  EXPECT_NE(out.find("| barrier |  |  |  |  |  | n/a |"), std::string::npos) << out;
  EXPECT_NE(
      out.find("Faults tried: 2, survived: 1, failed: 1; cases that cannot be made: 1 (timeout 3000 ms, "
               "bound 5000 ms, 2 ranks, NVIDIA H200)."),
      std::string::npos)
      << out;
}

TEST(FaultsTable, TwoDomainsAreNamedInTheTotals) {
  const TempFile json(
      report_json({3000, 5000, 2, "NVIDIA H100 80GB HBM3", 1}, {result("ll_dispatch.kill", true)}));
  std::string out;
  const int rc = run_script("--faults " + json.path, out);
  if (rc == -1) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(
      out.find("(timeout 3000 ms, bound 5000 ms, 2 ranks as 2 NVLink domains of 1, NVIDIA H100 80GB HBM3)."),
      std::string::npos)
      << out;
}

TEST(FaultsTable, SoakCountsAndMemory) {
  SoakReport r;
  r.check_every = 100;
  r.ll = {100000, 1000, 3, 61.5};
  r.ht = {10000, 100, 3, 80.25};
  r.before = {{1 << 30, 2048, 20}, {1 << 30, 4096, 21}};
  r.after = {{(1 << 30) + (1 << 20), 2048, 20}, {1 << 30, 5120, 21}};
  r.device_bound = 64 << 20;
  r.rss_bound_kib = 64 << 10;
  r.device_ok = r.rss_ok = r.fds_ok = r.passed = true;
  const TempFile json(soak_json(r));
  std::string out;
  const int rc = run_script("--soak " + json.path, out);
  if (rc == -1) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("| low-latency (graph replay) | 100000 | 1000 | 3 | 61.5 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| high-throughput | 10000 | 100 | 3 | 80.2 |"), std::string::npos) << out;
  EXPECT_NE(
      out.find("| device memory used | 1024.0 MiB -> 1025.0 MiB / 1024.0 MiB -> 1024.0 MiB | 64 MiB | yes |"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("| host RSS | 2.0 MiB -> 2.0 MiB / 4.0 MiB -> 5.0 MiB | 64 MiB | yes |"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("| open descriptors | 20 -> 20 / 21 -> 21 | 0 | yes |"), std::string::npos) << out;
}

TEST(FaultsTable, NoInputIsAUsageError) {
  std::string out;
  const int rc = run_script("", out);
  if (rc == -1) GTEST_SKIP() << "python3 not found";
  EXPECT_EQ(rc, 2) << out;
}

}  // namespace
}  // namespace epcomm::faults
