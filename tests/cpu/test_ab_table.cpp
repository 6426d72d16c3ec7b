// tools/bench/ab_table.py on two small result files laid out as epcomm-bench writes them: rows are
// matched by their key and differenced, a failed check is marked and fails the run, runs of
// different cards are refused, and --traces pairs the phase points of rank 0's traces. Skipped where
// python3 is absent.
#include <gtest/gtest.h>

#include <string>

#include "python_tool.hpp"

namespace epcomm::test {
namespace {

std::string run_json(const std::string& card, const std::string& commit, double dispatch_us, double kernel_us,
                     const std::string& check) {
  return "{\"workload\": \"ll-small\", \"card\": \"" + card + "\", \"commit\": \"" + commit +
         "\", \"date\": \"2026-12-05\", \"rows\": [" +
         "{\"impl\": \"epcomm-graph\", \"op\": \"dispatch\", \"dtype\": \"fp8\", \"num_sms\": 0, \"tokens\": "
         "8, "
         "\"hidden\": 7168, \"time_us\": " +
         std::to_string(dispatch_us) + ", \"kernel_us\": " + std::to_string(kernel_us) +
         ", \"preamble_us\": null, \"check\": \"" + check + "\"}, " +
         "{\"impl\": \"epcomm-graph\", \"op\": \"dispatch\", \"dtype\": \"fp8\", \"num_sms\": 0, \"tokens\": "
         "32, "
         "\"hidden\": 7168, \"time_us\": 20.0, \"kernel_us\": 15.0, \"preamble_us\": null, \"check\": "
         "\"pass\"}]}";
}

// ab_table.py on two runs (their JSON texts) and `more` arguments: its exit code (-1: no python3).
int run_ab(const std::string& base_json, const std::string& new_json, std::string& out,
           const std::string& more = "") {
  const TempFile base(base_json), change(new_json);
  return run_python_tool("tools/bench/ab_table.py", base.path + " " + change.path + more, out);
}

TEST(AbTable, DifferencesMatchedRows) {
  std::string out;
  const int rc = run_ab(run_json("H100", "aaaaaaa", 14.43, 11.33, "pass"),
                        run_json("H100", "bbbbbbb", 15.17, 12.06, "pass"), out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("base aaaaaaa, new bbbbbbb: ll-small, H100"), std::string::npos) << out;
  EXPECT_NE(out.find("| epcomm-graph | dispatch | fp8 | 0 | 8 | 14.43 | 15.17 | +0.74 | 11.33 | 12.06 | "
                     "+0.73 | - | - | - | - | - | - | - | - | - "
                     "| pass |"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("| 32 | 20.00 | 20.00 | +0.00 | 15.00 | 15.00 | +0.00 |"), std::string::npos) << out;
}

TEST(AbTable, AFailedCheckIsMarkedAndFailsTheRun) {
  std::string out;
  const int rc =
      run_ab(run_json("H100", "a", 14.0, 11.0, "pass"), run_json("H100", "b", 13.0, 10.0, "FAIL"), out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("| **pass/FAIL** |"), std::string::npos) << out;
}

TEST(AbTable, RunsOfDifferentCardsAreRefused) {
  std::string out;
  const int rc =
      run_ab(run_json("H100", "a", 14.0, 11.0, "pass"), run_json("H200", "b", 13.0, 10.0, "pass"), out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("different cards (H100 / H200)"), std::string::npos) << out;
}

// Rank 0's trace of one kernel, its points as epcomm-bench prints them, with a per-block line and
// rank 1's trace interleaved (both ignored).
std::string trace_text(double sent_median, double sent_last, double span) {
  const std::string s = std::to_string(span);
  return "[rank 0] # trace rank 0 epcomm-graph dispatch 8 tokens [dispatch kernel]: 64 launches; span " + s +
         " us, gap to the next 1.8 us (medians)\n"
         "[rank 0] #   credits       first    1.00  median    1.50  last    2.00 us\n"
         "[rank 0] #   by block credits       1.40 1.50 1.60\n"
         "[rank 1] # trace rank 1 epcomm-graph dispatch 8 tokens [dispatch kernel]: 64 launches; span 99.0 "
         "us\n"
         "[rank 0] #   sent          first    1.00  median    " +
         std::to_string(sent_median) + "  last    " + std::to_string(sent_last) +
         " us\n"
         "[rank 1] # trace rank 1 epcomm-graph dispatch 8 tokens [dispatch kernel]: 64 launches; span 99.0 "
         "us\n"
         "[rank 1] #   sent          first    9.00  median    9.00  last    9.00 us\n";
}

TEST(AbTable, TracesPairPhasePoints) {
  const TempFile base_txt(trace_text(6.18, 7.10, 14.94));
  const TempFile change_txt(trace_text(3.74, 7.46, 15.04));
  std::string out;
  const int rc = run_ab(run_json("H100", "a", 14.0, 11.0, "pass"), run_json("H100", "b", 13.0, 10.0, "pass"),
                        out, " --traces " + base_txt.path + " " + change_txt.path);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("epcomm-graph dispatch 8 tokens [dispatch kernel]: span 14.94 -> 15.04 us (+0.10)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("| credits | 1.50 | 1.50 | +0.00 | 2.00 | 2.00 | +0.00 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| sent | 6.18 | 3.74 | -2.44 | 7.10 | 7.46 | +0.36 |"), std::string::npos) << out;
  EXPECT_EQ(out.find("99.0"), std::string::npos) << out;  // rank 1's trace is not rank 0's
}

}  // namespace
}  // namespace epcomm::test
