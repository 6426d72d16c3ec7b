// tools/probes/ncu_lines.py on a source page in the layout Nsight Compute exports it (a title line
// per profiled launch, a header naming the columns, a row per source line): launches of one kernel
// are added together, lines come out by their samples with their share, columns are found by name.
// Skipped where python3 is absent.
#include <gtest/gtest.h>

#include <string>

#include "python_tool.hpp"

namespace epcomm::test {
namespace {

// ncu_lines.py (its flags `args`, each followed by a space) on a file holding `page`: its exit code
// (-1: no python3) and its output in `out`.
int run_lines(const std::string& page, const std::string& args, std::string& out) {
  const TempFile csv(page);
  return run_python_tool("tools/probes/ncu_lines.py", args + csv.path, out);
}

// Two launches of notify (the second with the columns in another order) and one of layout.
constexpr const char* kPage =
    "\"void epcomm::(anonymous namespace)::ht_notify_kernel(epcomm::HtNotifyArgs)\"\n"
    "\"#\",\"Source\",\"Warp Stall Sampling (All Samples)\",\"Warp Stall Sampling (Not-issued Samples)\"\n"
    "\"10\",\"  ok = __syncthreads_and(ok);\",\"300\",\"290\"\n"
    "\"11\",\"  ptx::fence_acq_rel_sys();\",\"100\",\"95\"\n"
    "\"12\",\"  int unused = 0;\",\"0\",\"0\"\n"
    "\n"
    "\"void epcomm::(anonymous namespace)::ht_notify_kernel(epcomm::HtNotifyArgs)\"\n"
    "\"Warp Stall Sampling (All Samples)\",\"#\",\"Source\"\n"
    "\"1,100\",\"11\",\"  ptx::fence_acq_rel_sys();\"\n"
    "\"void epcomm::(anonymous namespace)::dispatch_layout_kernel<long, true>(epcomm::LayoutArgs)\"\n"
    "\"#\",\"Source\",\"Warp Stall Sampling (All Samples)\"\n"
    "\"70\",\"    atomicAdd(&expert_counts[e], 1);\",\"50\"\n";

TEST(NcuLines, AddsLaunchesPerKernelAndRanksLines) {
  std::string out;
  const int rc = run_lines(kPage, "", out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  // notify: 300 + 100 + 1100 samples over two launches; the fence line first (1200, 80 %).
  EXPECT_NE(out.find("== ht_notify_kernel: 1500 samples, 385 not issued over 2 table(s)"), std::string::npos)
      << out;
  const auto fence = out.find("1200  80.0%  11  ptx::fence_acq_rel_sys();");
  const auto barrier = out.find("300  20.0%  10  ok = __syncthreads_and(ok);");
  ASSERT_NE(fence, std::string::npos) << out;
  ASSERT_NE(barrier, std::string::npos) << out;
  EXPECT_LT(fence, barrier) << out;
  EXPECT_EQ(out.find("int unused"), std::string::npos) << out;  // a line without samples is left out
  EXPECT_NE(out.find("== dispatch_layout_kernel<long, true>: 50 samples over 1 table(s)"), std::string::npos)
      << out;
}

// The cuda,sass view (Nsight Compute 2025): a "Function Name" title, a header with "Line No", two
// "Source" columns (the line's text, then the instruction's) and "Address"; a line's row holds its
// samples and the instruction rows under it repeat them. Two instantiations of one template stay
// apart, each named with its template arguments.
constexpr const char* kInterleaved =
    "\"Function Name\",\"void epcomm::<unnamed>::ll_combine_kernel<epcomm::IpcPeers, (bool)1>"
    "(epcomm::LlCombineArgs)\"\n"
    "\"Line No\",\"Source\",\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\"\n"
    "\"77\",\"return __syncthreads_and(ok);\",\"-\",\"-\",\"40\"\n"
    "\"\",\"\",\"0x10\",\"      BAR.RED.AND.DEFER_BLOCKING 0x0, P0\",\"30\"\n"
    "\"\",\"\",\"0x20\",\"      BRA 0x40\",\"10\"\n"
    "\"\",\"\",\"...\",\"...\",\"-\"\n"
    "\"305\",\"if (blockIdx.x == 0)\",\"-\",\"-\",\"60\"\n"
    "\"\",\"\",\"0x30\",\"      LDG.E.64 R2, desc[UR4][R4.64]\",\"60\"\n"
    "\"Function Name\",\"void epcomm::<unnamed>::ll_combine_kernel<epcomm::IpcPeers, (bool)0>"
    "(epcomm::LlCombineArgs)\"\n"
    "\"Line No\",\"Source\",\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\"\n"
    "\"58\",\"return __syncthreads_and(ok);\",\"-\",\"-\",\"5\"\n"
    "\"\",\"\",\"0x10\",\"      BAR.SYNC.DEFER_BLOCKING 0x0\",\"5\"\n";

TEST(NcuLines, InterleavedViewCountsEachLineOnceAndKeepsInstantiationsApart) {
  std::string out;
  const int rc = run_lines(kInterleaved, "", out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("== ll_combine_kernel<IpcPeers, 1>: 100 samples over 1 table(s)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("60  60.0%  305  if (blockIdx.x == 0)"), std::string::npos) << out;
  EXPECT_NE(out.find("40  40.0%  77  return __syncthreads_and(ok);"), std::string::npos) << out;
  EXPECT_EQ(out.find("BAR.RED"), std::string::npos) << out;  // instruction rows are not lines
  EXPECT_NE(out.find("== ll_combine_kernel<IpcPeers, 0>: 5 samples over 1 table(s)"), std::string::npos)
      << out;
}

// The cuda,sass view as Nsight Compute 2025 writes it with SourceCounters: a "File Path" row before
// each launch's table of that file, "Instructions Executed" and the `stall_*` columns (every sample,
// then the not-issued ones). Lines are named file:line; a line's instructions and stall reasons are
// added over the tables; --sort instructions ranks by them.
constexpr const char* kWithFiles =
    "\"File Path\",\"/src/intranode/layout_block.cuh\"\n"
    "\"Function Name\",\"void epcomm::<unnamed>::fused_kernel<long, (int)8>(epcomm::LayoutArgs)\"\n"
    "\"Line No\",\"Source\",\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\",\"Instructions "
    "Executed\",\"stall_barrier\",\"stall_wait\",\"stall_wait (Not Issued)\"\n"
    "\"93\",\"const int r = by.divide(e);\",\"-\",\"-\",\"10\",\"900\",\"0\",\"8\",\"7\"\n"
    "\"\",\"\",\"0x10\",\"      IMAD.HI.U32 R2, R3, R4, RZ\",\"10\",\"900\",\"0\",\"8\",\"7\"\n"
    "\"File Path\",\"/src/intranode/fused_scan.cuh\"\n"
    "\"Function Name\",\"void epcomm::<unnamed>::fused_kernel<long, (int)8>(epcomm::LayoutArgs)\"\n"
    "\"Line No\",\"Source\",\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\",\"Instructions "
    "Executed\",\"stall_barrier\",\"stall_wait\",\"stall_wait (Not Issued)\"\n"
    "\"93\",\"__syncthreads();\",\"-\",\"-\",\"60\",\"100\",\"55\",\"1\",\"1\"\n"
    "\"File Path\",\"/src/intranode/layout_block.cuh\"\n"
    "\"Function Name\",\"void epcomm::<unnamed>::fused_kernel<long, (int)8>(epcomm::LayoutArgs)\"\n"
    "\"Line No\",\"Source\",\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\",\"Instructions "
    "Executed\",\"stall_barrier\",\"stall_wait\",\"stall_wait (Not Issued)\"\n"
    "\"93\",\"const int r = by.divide(e);\",\"-\",\"-\",\"30\",\"1,100\",\"2\",\"20\",\"19\"\n";

TEST(NcuLines, NamesLinesByFileAndAddsInstructionsAndStallReasons) {
  std::string out;
  const int rc = run_lines(kWithFiles, "", out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("== fused_kernel<long, 8>: 100 samples, 2100 instructions executed over 3 table(s)"),
            std::string::npos)
      << out;
  // Line 93 of two files stays two lines; the first file's two launches add up (40 samples, 2000
  // instructions, wait 28 of every sample: the not-issued column is not a reason of its own).
  const auto barrier =
      out.find("60  60.0%  fused_scan.cuh:93  __syncthreads();  [inst 100 (4.8%); barrier 55, wait 1]");
  const auto divide = out.find(
      "40  40.0%  layout_block.cuh:93  const int r = by.divide(e);  [inst 2000 (95.2%); wait 28, barrier 2]");
  ASSERT_NE(barrier, std::string::npos) << out;
  ASSERT_NE(divide, std::string::npos) << out;
  EXPECT_LT(barrier, divide) << out;  // by samples
  EXPECT_EQ(out.find("IMAD"), std::string::npos) << out;

  std::string by_instructions;
  ASSERT_EQ(run_lines(kWithFiles, "--sort instructions ", by_instructions), 0) << by_instructions;
  const auto first = by_instructions.find("layout_block.cuh:93"),
             second = by_instructions.find("fused_scan.cuh:93");
  ASSERT_NE(first, std::string::npos) << by_instructions;
  ASSERT_NE(second, std::string::npos) << by_instructions;
  EXPECT_LT(first, second) << by_instructions;
}

TEST(NcuLines, APageWithoutSamplesIsAnError) {
  std::string out;
  const int rc = run_lines("\"a\",\"b\"\n\"1\",\"2\"\n", "", out);
  if (rc < 0) GTEST_SKIP() << "python3 not found";
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("no table with a 'Warp Stall Sampling (All Samples)' column"), std::string::npos) << out;
}

}  // namespace
}  // namespace epcomm::test
