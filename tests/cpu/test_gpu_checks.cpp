// The GPU tests' checking logic, run without a GPU (tests/gpu/checks.hpp, tests/gpu/gpu_gate.hpp):
// each case feeds a never-written (poisoned) output or a machine state and shows that the check now
// fails where the old poison or the old rule let a wrong result pass (issue 18).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gpu/checks.hpp"
#include "gpu/gpu_gate.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::test {
namespace {

// What a T in memory memset to `byte` reads as (the old poisons: 0xab, 0xff).
template <typename T>
T filled_with(std::uint8_t byte) {
  T value;
  std::memset(&value, byte, sizeof(T));
  return value;
}

TEST(GpuChecksPoison, NoCorrectOutputOfAnyDtypeEqualsIt) {
  EXPECT_TRUE(std::isnan(poisoned<float>()));
  EXPECT_TRUE(std::isnan(poisoned<double>()));
  EXPECT_TRUE(std::isnan(ref::bf16_to_float(poisoned<std::uint16_t>())));
  const std::vector<std::uint8_t> bytes = poison_bytes(4);
  EXPECT_TRUE(std::isnan(ref::e4m3_to_float(bytes[0])));
  EXPECT_TRUE(std::isnan(ref::e4m3_to_float(bytes[1])));
  // Indices: far beyond any token, expert, rank or count, and not the -1 of an empty slot.
  EXPECT_GT(poisoned<std::int32_t>(), 1 << 30);
  EXPECT_GT(poisoned<std::int64_t>(), std::int64_t{1} << 62);
  EXPECT_NE(bytes[0], 0);  // bools: neither 0 nor 1
  EXPECT_NE(bytes[0], 1);
  EXPECT_NE(bytes[1], 1);
  // An odd tail still ends in a NaN byte of FP8.
  EXPECT_EQ(poison_bytes(3)[2], 0xff);
}

// Item 2: a token routed nowhere expects exactly 0 from combine. The old poison 0xab read as
// -1.2e-12 (BF16 and float32), inside the tolerances, and NaN got past the old weights compare.
TEST(GpuChecksCombine, UnwrittenZerosFailNowAndPassedTheOldWay) {
  const std::vector<std::uint16_t> want_x(64, 0);  // BF16 zeros
  const std::vector<float> want_w(64, 0.0f);
  // The old checks, as test_ht.cpp had them at d421727.
  auto old_x_bad = [](std::uint16_t g, std::uint16_t w) {
    const float gf = ref::bf16_to_float(g), wf = ref::bf16_to_float(w);
    return !(std::fabs(gf - wf) <= 1e-2f * std::fabs(wf) + 1e-2f);
  };
  auto old_w_bad = [](float g, float w) { return std::fabs(g - w) > 1e-5f * std::fabs(w) + 1e-6f; };
  EXPECT_FALSE(old_x_bad(filled_with<std::uint16_t>(0xab), 0)) << "the old poison passed the x check";
  EXPECT_FALSE(old_w_bad(filled_with<float>(0xab), 0.0f)) << "the old poison passed the weights check";
  EXPECT_FALSE(old_w_bad(poisoned<float>(), 0.0f)) << "NaN passed the old weights check";

  const std::vector<std::uint16_t> got_x(want_x.size(), poisoned<std::uint16_t>());
  const std::vector<float> got_w(want_w.size(), poisoned<float>());
  EXPECT_EQ(bf16_off(got_x, want_x, kCombineXRel, kCombineXAbs).count, want_x.size());
  EXPECT_EQ(f32_off(got_w, want_w, kCombineWeightRel, kCombineWeightAbs).count, want_w.size());
  // One missed row among correct ones is found, and named.
  std::vector<float> one_missed = want_w;
  one_missed[17] = poisoned<float>();
  const Mismatches m = f32_off(one_missed, want_w, kCombineWeightRel, kCombineWeightAbs);
  EXPECT_EQ(m.count, 1u);
  EXPECT_EQ(m.first, 17u);
}

TEST(GpuChecksCombine, CorrectSumsWithinToleranceStillPass) {
  const std::vector<std::uint16_t> want = {ref::float_to_bf16(1.0f), ref::float_to_bf16(-3.5f), 0};
  const std::vector<std::uint16_t> got = {ref::float_to_bf16(1.0078125f), ref::float_to_bf16(-3.5f), 0};
  EXPECT_EQ(bf16_off(got, want, kCombineXRel, kCombineXAbs).count, 0u);
  EXPECT_EQ(f32_off({0.5f, 0.0f}, {0.5f + 1e-7f, 0.0f}, kCombineWeightRel, kCombineWeightAbs).count, 0u);
  EXPECT_EQ(f32_off({0.5f}, {0.6f}, kCombineWeightRel, kCombineWeightAbs).count, 1u);
  // A NaN the reference expects is matched by a NaN only.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(close_to(nan, nan, 0.0f, 0.0f));
  EXPECT_FALSE(close_to(0.0f, nan, 1.0f, 1.0f));
}

// Item 3: the zero-copy poison 0xff read -1 as int32 and int64, the expected value of every
// non-local top-k slot and padding row, so unwritten -1s matched bit for bit.
TEST(GpuChecksDispatch, UnwrittenMinusOnesFailNowAndPassedTheOldWay) {
  const std::vector<std::int64_t> want64(32, -1);
  const std::vector<std::int32_t> want32(32, -1);
  EXPECT_EQ(
      bitwise_mismatches(std::vector<std::int64_t>(32, filled_with<std::int64_t>(0xff)), want64, 32).count,
      0u);
  EXPECT_EQ(
      bitwise_mismatches(std::vector<std::int32_t>(32, filled_with<std::int32_t>(0xff)), want32, 32).count,
      0u);
  EXPECT_EQ(bitwise_mismatches(std::vector<std::int64_t>(32, poisoned<std::int64_t>()), want64, 32).count,
            32u);
  EXPECT_EQ(bitwise_mismatches(std::vector<std::int32_t>(32, poisoned<std::int32_t>()), want32, 32).count,
            32u);
  // Payload bytes and scales: a poisoned row never equals a reference row (FP8 inputs hold no NaN).
  const std::vector<std::uint8_t> row = {0x00, 0x3c, 0x7e, 0xfe, 0x81};
  const Mismatches m = bitwise_mismatches(poison_bytes(row.size()), row, row.size());
  EXPECT_EQ(m.count, row.size());
  EXPECT_EQ(m.first, 0u);
}

// Item 9: the cached FP8 dispatch's scales are compared now. Left unwritten (poisoned) or left
// from the first call (zero-copy rewrites the first call's rows), they differ from the new ones.
TEST(GpuChecksDispatch, CachedScalesLeftUnsentFail) {
  const std::vector<float> first_call = {0.25f, 1.5f, 0.125f, 2.0f};
  const std::vector<float> new_scales = {0.5f, 1.25f, 0.0625f, 1.75f};
  EXPECT_EQ(bitwise_mismatches(first_call, new_scales, 4).count, 4u);
  EXPECT_EQ(bitwise_mismatches(std::vector<float>(4, poisoned<float>()), new_scales, 4).count, 4u);
  EXPECT_EQ(bitwise_mismatches(new_scales, new_scales, 4).count, 0u);
}

// Item 6: the straight-copy counts are asserted at any rank count. At 8 ranks dense routing misses
// some rank by more than kMaxStraightHoles tokens: the old test asserted nothing above 4 ranks; the
// expectation now says which ranks qualify, and a copy queued (or missing) against it fails.
TEST(GpuChecksStraight, ExpectationHoldsAboveFourRanks) {
  const std::int64_t T = 2048;
  std::vector<std::int32_t> per_rank(8, static_cast<std::int32_t>(T - 1));  // all but token 3
  per_rank[5] = static_cast<std::int32_t>(T - 29);                          // ~1.4% missed
  StraightExpected e = straight_expected(per_rank, T, 5);
  EXPECT_FALSE(e.own);
  EXPECT_TRUE(e.peer);
  for (auto& n : per_rank) n = static_cast<std::int32_t>(T - 29);
  e = straight_expected(per_rank, T, 0);
  EXPECT_FALSE(e.own);
  EXPECT_FALSE(e.peer);
  per_rank[0] = static_cast<std::int32_t>(T - kMaxStraightHoles);
  e = straight_expected(per_rank, T, 0);
  EXPECT_TRUE(e.own);
  EXPECT_FALSE(e.peer);
}

GateInput machine(cudaError_t error, int num_gpus, bool driver = true) {
  GateInput in;
  in.count_error = error;
  in.error_text = error == cudaSuccess ? "no error" : "error text of the CUDA runtime";
  in.num_gpus = num_gpus;
  in.driver_installed = driver;
  in.world = 2;
  return in;
}

// Item 13: the old rule ("cudaGetDeviceCount != cudaSuccess || count == 0" -> skipped) turned a
// driver mismatch into "skipped: no GPU". Now only no device (or no driver at all) skips.
TEST(GpuGate, OnlyAMachineWithoutGpuSkips) {
  auto old_rule_skips = [](const GateInput& in) { return in.count_error != cudaSuccess || in.num_gpus == 0; };
  const GateInput mismatch = machine(cudaErrorInsufficientDriver, 0, /*driver=*/true);
  EXPECT_TRUE(old_rule_skips(mismatch));
  const GateDecision d = gpu_gate(mismatch);
  EXPECT_EQ(d.exit_code, kExitFail);
  EXPECT_NE(d.message.find("error text of the CUDA runtime"), std::string::npos) << d.message;
  EXPECT_EQ(gpu_gate(machine(cudaErrorInitializationError, 0)).exit_code, kExitFail);
  EXPECT_EQ(gpu_gate(machine(cudaErrorNoDevice, 0)).exit_code, kExitSkip);
  EXPECT_EQ(gpu_gate(machine(cudaSuccess, 0)).exit_code, kExitSkip);
  EXPECT_EQ(gpu_gate(machine(cudaErrorInsufficientDriver, 0, /*driver=*/false)).exit_code, kExitSkip);
  EXPECT_EQ(gpu_gate(machine(cudaSuccess, 1)).exit_code, kExitSkip);  // 2 ranks, 1 GPU
  GateInput shared = machine(cudaSuccess, 1);
  shared.share_gpus = true;
  EXPECT_EQ(gpu_gate(shared).exit_code, -1);
  EXPECT_EQ(gpu_gate(machine(cudaSuccess, 2)).exit_code, -1);
}

TEST(GpuGate, RequireGpuTurnsEverySkipIntoAFailure) {
  for (GateInput in : {machine(cudaErrorNoDevice, 0), machine(cudaSuccess, 1),
                       machine(cudaErrorInsufficientDriver, 0, /*driver=*/false)}) {
    in.require_gpu = true;
    const GateDecision d = gpu_gate(in);
    EXPECT_EQ(d.exit_code, kExitFail) << d.message;
    EXPECT_NE(d.message.find("EPCOMM_REQUIRE_GPU=1"), std::string::npos) << d.message;
  }
  // Skipped cases (e.g. NVSHMEM's data path on one rank, item 1) fail under it too.
  EXPECT_EQ(rank_exit_code(false, 5, 1, /*require_gpu=*/true), kExitFail);
  EXPECT_EQ(rank_exit_code(false, 5, 1, /*require_gpu=*/false), kExitPass);
  EXPECT_EQ(rank_exit_code(false, 0, 3, /*require_gpu=*/false), kExitSkip);
  EXPECT_EQ(rank_exit_code(true, 4, 0, /*require_gpu=*/false), kExitFail);
  EXPECT_EQ(rank_exit_code(false, 4, 0, /*require_gpu=*/true), kExitPass);
}

TEST(GpuGate, ProgramSkipsOnlyWhenEveryRankSkipped) {
  EXPECT_EQ(program_exit_code({kExitPass, kExitPass}), kExitPass);
  EXPECT_EQ(program_exit_code({kExitSkip, kExitSkip}), kExitSkip);
  EXPECT_EQ(program_exit_code({kExitPass, kExitSkip}), kExitFail);
  EXPECT_EQ(program_exit_code({kExitSkip, kExitFail}), kExitFail);
}

}  // namespace
}  // namespace epcomm::test
