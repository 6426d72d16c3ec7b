// The benchmark's data check (tools/bench/ht_check.hpp, ll_check.hpp, compare.hpp) and its poison
// (poison.hpp), on the CPU. Each failing case below is an output a broken GPU call could leave:
// the checker must FAIL on an empty tensor, a tensor of the wrong size and a row the call never
// wrote (still holding the poison), and pass on the reference's own outputs. Before issue 18 item
// 11, element counts came from the downloaded tensors, so the empty cases compared nothing and
// passed; the NaN-poisoned combine weights passed too (the tolerance test was `> tol`).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bench/compare.hpp"
#include "bench/expected.hpp"
#include "bench/ht_check.hpp"
#include "bench/ll_check.hpp"
#include "bench/poison.hpp"
#include "bench/workload.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {
namespace {

// 2 ranks, 40 tokens, hidden 256, top-4 of 16 experts: every output non-trivial and small.
Workload small_workload() {
  Workload w;
  w.name = "test-check";
  w.num_tokens = 40;
  w.hidden = 256;
  w.num_topk = 4;
  w.num_experts = 16;
  return w;
}

const ExpectedHt& expected() {
  static const ExpectedHt e = compute_expected_ht(small_workload(), 2, 0, InputSet::kCheck);
  return e;
}

// What a correct call returns: the reference's own outputs.
HtDispatchOutputs correct_dispatch(bool fp8) {
  const ref::HtRankOutput& want = fp8 ? expected().dispatch_fp8 : expected().dispatch_bf16;
  return {want.num_recv_tokens, want.recv_x, fp8 ? want.recv_scales : std::vector<float>{},
          want.recv_topk_idx, want.recv_topk_weights};
}

// Overwrites elements [first, first + count) of `v` with the poison, as the GPU writes it into
// memory that starts at a 4-byte boundary.
template <typename T>
void poison_elements(std::vector<T>& v, std::size_t first, std::size_t count) {
  auto* bytes = reinterpret_cast<uint8_t*>(v.data() + first);
  const std::size_t offset = first * sizeof(T);
  for (std::size_t i = 0; i < count * sizeof(T); ++i) bytes[i] = poison_byte(offset + i);
}

std::string joined(const Verdict& v) {
  std::string all;
  for (const std::string& f : v.failures) all += f + "\n";
  return all;
}

void expect_fails_naming(const Verdict& v, const std::string& tensor, const std::string& detail) {
  EXPECT_FALSE(v.ok());
  const std::string all = joined(v);
  EXPECT_NE(all.find(tensor), std::string::npos) << all;
  EXPECT_NE(all.find(detail), std::string::npos) << all;
}

TEST(BenchCheck, ReferenceOutputsPass) {
  ASSERT_GT(expected().dispatch_bf16.num_recv_tokens, 0);
  for (const bool fp8 : {false, true})
    EXPECT_TRUE(check_ht_dispatch(correct_dispatch(fp8),
                                  fp8 ? expected().dispatch_fp8 : expected().dispatch_bf16, {.fp8 = fp8})
                    .ok());
  const HtCombineOutputs combined{expected().combine_out, expected().combine_topk_weights};
  EXPECT_TRUE(check_ht_combine(combined, expected(), true, "epcomm").ok());
}

// Catches: an empty recv_topk_idx, recv_topk_weights or recv_x_scales (issue 18 item 11).
TEST(BenchCheck, EmptyOutputsFailNamingTheTensorAndBothSizes) {
  const ref::HtRankOutput& want = expected().dispatch_fp8;
  const std::string n_idx = std::to_string(want.recv_topk_idx.size());
  const std::string n_scales = std::to_string(want.recv_scales.size());
  HtDispatchOutputs got = correct_dispatch(true);
  got.recv_topk_idx.clear();
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_topk_idx",
                      "0 elements, the reference has " + n_idx);
  got = correct_dispatch(true);
  got.recv_topk_weights.clear();
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_topk_weights",
                      "0 elements, the reference has " + n_idx);
  got = correct_dispatch(true);
  got.recv_x_scales.clear();
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_x_scales",
                      "0 elements, the reference has " + n_scales);
  const HtCombineOutputs no_weights{expected().combine_out, {}};
  expect_fails_naming(check_ht_combine(no_weights, expected(), true, "epcomm"), "epcomm combine topk_weights",
                      "0 elements");
  const HtCombineOutputs no_out{{}, expected().combine_topk_weights};
  expect_fails_naming(check_ht_combine(no_out, expected(), true, "nccl"), "nccl combine out", "0 elements");
}

// Catches: outputs of the wrong size, e.g. a short download or a row count from another call.
TEST(BenchCheck, WrongSizesFail) {
  const ref::HtRankOutput& want = expected().dispatch_bf16;
  HtDispatchOutputs got = correct_dispatch(false);
  got.recv_x.resize(got.recv_x.size() - 2);
  expect_fails_naming(check_ht_dispatch(got, want, {}), "epcomm recv_x",
                      std::to_string(want.recv_x.size() - 2) + " elements, the reference has " +
                          std::to_string(want.recv_x.size()));
  got = correct_dispatch(false);
  got.recv_topk_idx.push_back(-1);
  expect_fails_naming(check_ht_dispatch(got, want, {}), "epcomm recv_topk_idx", "the reference has");
  got = correct_dispatch(false);
  got.num_recv_tokens -= 1;
  expect_fails_naming(check_ht_dispatch(got, want, {}), "epcomm dispatch", "rows");
  HtCombineOutputs combined{expected().combine_out, expected().combine_topk_weights};
  combined.x.resize(combined.x.size() / 2);
  expect_fails_naming(check_ht_combine(combined, expected(), true, "epcomm"), "epcomm combine out",
                      "the reference has " + std::to_string(expected().combine_out.size()));
}

// Catches: a row the checked call never wrote, still holding the poison (issue 18 item 10).
TEST(BenchCheck, PoisonedUnwrittenRowsFail) {
  const ref::HtRankOutput& want = expected().dispatch_fp8;
  const auto k = static_cast<std::size_t>(small_workload().num_topk);
  const auto row_bytes = static_cast<std::size_t>(small_workload().hidden);
  const std::size_t row = 3;
  HtDispatchOutputs got = correct_dispatch(true);
  poison_elements(got.recv_x, row * row_bytes, row_bytes);
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_x",
                      std::to_string(row_bytes) + " of ");
  got = correct_dispatch(true);
  poison_elements(got.recv_topk_idx, row * k, k);
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_topk_idx",
                      "got 9223372034707292159");
  got = correct_dispatch(true);
  poison_elements(got.recv_topk_weights, row * k, k);
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_topk_weights", "nan");
  got = correct_dispatch(true);
  poison_elements(got.recv_x_scales, row * 2, 2);
  expect_fails_naming(check_ht_dispatch(got, want, {.fp8 = true}), "epcomm recv_x_scales", "nan");

  // Combine: NaN fails the tolerance test, for x and for the weights.
  const auto hidden = static_cast<std::size_t>(small_workload().hidden);
  HtCombineOutputs combined{expected().combine_out, expected().combine_topk_weights};
  poison_elements(combined.x, 5 * hidden, hidden);
  expect_fails_naming(check_ht_combine(combined, expected(), true, "epcomm"), "epcomm combine out",
                      std::to_string(hidden) + " of ");
  combined = {expected().combine_out, expected().combine_topk_weights};
  poison_elements(combined.topk_weights, 5 * k, k);
  expect_fails_naming(check_ht_combine(combined, expected(), true, "epcomm"), "epcomm combine topk_weights",
                      std::to_string(k) + " of ");
}

// The check set is another routing and payload than the timed calls': outputs a timed call left
// behind cannot match the checked call's reference.
TEST(BenchCheck, CheckInputsDifferFromTimedInputs) {
  const ExpectedHt timed = compute_expected_ht(small_workload(), 2, 0, InputSet::kTimed);
  const HtDispatchOutputs stale{timed.dispatch_bf16.num_recv_tokens,
                                timed.dispatch_bf16.recv_x,
                                {},
                                timed.dispatch_bf16.recv_topk_idx,
                                timed.dispatch_bf16.recv_topk_weights};
  EXPECT_FALSE(check_ht_dispatch(stale, expected().dispatch_bf16, {}).ok());
  const RankInputs a = make_rank_inputs(small_workload(), 2, 1, InputSet::kTimed);
  const RankInputs b = make_rank_inputs(small_workload(), 2, 1, InputSet::kCheck);
  EXPECT_NE(a.bf16.x, b.bf16.x);
  EXPECT_NE(a.bf16.topk_idx, b.bf16.topk_idx);
  EXPECT_NE(a.bf16.topk_weights, b.bf16.topk_weights);
}

// The poison reads as NaN or an impossible index in every dtype the outputs use.
TEST(BenchPoison, NoCorrectOutputEqualsIt) {
  std::vector<uint8_t> bytes(8);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = poison_byte(i);
  float f32;
  int32_t i32;
  int64_t i64;
  uint16_t bf16_lo, bf16_hi;
  std::memcpy(&f32, bytes.data(), 4);
  std::memcpy(&i32, bytes.data(), 4);
  std::memcpy(&i64, bytes.data(), 8);
  std::memcpy(&bf16_lo, bytes.data(), 2);
  std::memcpy(&bf16_hi, bytes.data() + 2, 2);
  EXPECT_TRUE(std::isnan(f32));
  EXPECT_TRUE(std::isnan(ref::bf16_to_float(bf16_lo)));
  EXPECT_TRUE(std::isnan(ref::bf16_to_float(bf16_hi)));
  for (const uint8_t b : bytes) EXPECT_TRUE(std::isnan(ref::e4m3_to_float(b))) << int{b};
  EXPECT_EQ(i32, 0x7FFFFFFF);
  EXPECT_EQ(i64, 0x7FFFFFFF7FFFFFFFll);
}

TEST(BenchPoison, ViewSpanCoversStridedViews) {
  const std::vector<int64_t> shape = {3, 4, 2}, contiguous = {8, 2, 1};
  EXPECT_EQ(view_span_bytes(shape, contiguous, 4), 24u * 4);
  // The low-latency scales: [nle, cap, S] with strides (S * cap, 1, cap).
  const std::vector<int64_t> scales_shape = {2, 10, 3}, scales_stride = {30, 1, 10};
  EXPECT_EQ(view_span_bytes(scales_shape, scales_stride, 4), 60u * 4);
  EXPECT_EQ(view_span_bytes(std::vector<int64_t>{0, 5}, std::vector<int64_t>{5, 1}, 4), 0u);
}

// The low-latency dispatch check fails on an expert whose rows were not downloaded, and on a
// poisoned recv_count.
TEST(BenchCheck, LowLatencyDispatchFailsOnMissingRows) {
  Workload w = small_workload();
  w.mode = Mode::kLowLatency;
  const int R = 2;
  const ExpectedLl e = compute_expected_ll(w, R, 0, InputSet::kCheck);
  const int64_t cap = R * w.num_tokens, S = w.num_scales(), nle = w.num_experts / R;
  HostLlDispatch got;
  got.count = e.dispatch.recv_count;
  got.ranges = e.dispatch.layout_range;
  got.src = e.dispatch.src_info;
  got.scales = e.dispatch.recv_scales;
  const auto H = static_cast<std::size_t>(w.hidden);
  for (int64_t x = 0; x < nle; ++x) {
    const auto* first = e.dispatch.recv_x.data() + static_cast<std::size_t>(x * cap) * H;
    got.x.emplace_back(first, first + static_cast<std::size_t>(got.count[static_cast<std::size_t>(x)]) * H);
  }
  EXPECT_TRUE(check_ll_dispatch(got, e.dispatch, R, cap, S, w.hidden).ok());
  HostLlDispatch missing = got;
  missing.x[1].clear();
  ASSERT_GT(got.count[1], 0);
  expect_fails_naming(check_ll_dispatch(missing, e.dispatch, R, cap, S, w.hidden), "recv_x of expert 1",
                      "0 bytes");
  HostLlDispatch poisoned = got;
  poison_elements(poisoned.count, 0, 1);
  expect_fails_naming(check_ll_dispatch(poisoned, e.dispatch, R, cap, S, w.hidden), "recv_count", "differs");
}

}  // namespace
}  // namespace epcomm::bench
