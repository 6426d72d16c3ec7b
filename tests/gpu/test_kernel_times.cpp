// Buffer::set_kernel_timing and Buffer::last_kernel_times (epcomm/kernel_time.hpp), on the GPU:
// off, a call reports no kernel; on, the layout call reports its one kernel and a whole dispatch
// its notify first, each with a positive device time that last_kernel_us sums; switched off and
// on between calls, only calls made while on are reported. The dispatch's rows are checked against
// the CPU reference, so timing a call does not change what it computes.
// Buffer::notify_trace (EPCOMM_HT_TRACE=1): empty unless asked for; asked for, each dispatch
// stamps notify's points in order in one ring slot of its own.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "epcomm/buffer.hpp"
#include "epcomm/reference.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"

namespace epcomm::test {
namespace {

// A kernel is never longer than this here (a bound to catch garbage, not a timing claim).
constexpr double kMaxKernelUs = 1e7;

std::vector<std::string> names_of(const std::vector<KernelTime>& kernels) {
  std::vector<std::string> names;
  for (const KernelTime& k : kernels) names.push_back(k.name);
  return names;
}

void expect_plausible(const std::vector<KernelTime>& kernels) {
  for (const KernelTime& k : kernels) {
    EXPECT_GT(k.us, 0.0) << k.name;
    EXPECT_LT(k.us, kMaxKernelUs) << k.name;
  }
}

class KernelTimes : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuEnv& env = gpu_env();
    const int R = env.world;
    c_.num_tokens = 256;
    c_.hidden = 1024;
    c_.experts_per_rank = 16;
    geometry_ = ref::Geometry{R, c_.experts_per_rank * R, R};
    std::vector<ref::HtRankInput> inputs;
    for (int r = 0; r < R; ++r) inputs.push_back(make_ht_input(c_, r, R));
    expected_ = ref::ht_dispatch(geometry_, inputs, {})[static_cast<std::size_t>(env.rank)];
    const ref::HtRankInput& in = inputs[static_cast<std::size_t>(env.rank)];
    x_ = upload(in.x, DType::kBF16, {in.num_tokens, c_.hidden});
    topk_ = upload(in.topk_idx, DType::kI64, {in.num_tokens, c_.num_topk});
    weights_ = upload(in.topk_weights, DType::kF32, {in.num_tokens, c_.num_topk});
    buffer_ = std::make_unique<Buffer>(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 27});
  }

  DispatchLayout layout() {
    return buffer_->get_dispatch_layout(topk_, geometry_.num_experts, {.stream = gpu_env().stream});
  }

  // With the layout's tensors, or (null) given topk_idx alone: layout and notify in one launch.
  DispatchResult dispatch(const DispatchLayout* l) {
    DispatchArgs a;
    a.x = x_;
    a.topk_idx = topk_;
    a.topk_weights = weights_;
    if (l != nullptr) {
      a.num_tokens_per_rank = l->num_tokens_per_rank;
      a.is_token_in_rank = l->is_token_in_rank;
      a.num_tokens_per_expert = l->num_tokens_per_expert;
    } else {
      a.num_experts = geometry_.num_experts;
    }
    a.config.num_sms = c_.num_sms;
    DispatchResult r = buffer_->dispatch(a, {.stream = gpu_env().stream});
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
    buffer_->check_status();
    return r;
  }
  DispatchResult dispatch(const DispatchLayout& l) { return dispatch(&l); }

  void expect_rows_match(const DispatchResult& got) {
    ASSERT_EQ(got.handle.num_recv_tokens(), expected_.num_recv_tokens);
    const std::vector<std::uint8_t> rows = download<std::uint8_t>(got.recv_x);
    const auto n = static_cast<std::size_t>(expected_.num_recv_tokens * c_.hidden * 2);
    ASSERT_GE(rows.size(), n);
    ASSERT_GE(expected_.recv_x.size(), n);
    EXPECT_TRUE(
        std::equal(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), expected_.recv_x.begin()));
  }

  HtCase c_;
  ref::Geometry geometry_{};
  ref::HtRankOutput expected_;
  DeviceTensor x_, topk_, weights_;
  std::unique_ptr<Buffer> buffer_;
};

TEST_F(KernelTimes, OffReportsNoKernel) {
  buffer_->set_kernel_timing(false);
  EXPECT_FALSE(buffer_->kernel_timing());
  const DispatchLayout l = layout();
  EXPECT_TRUE(buffer_->last_kernel_times().empty());
  EXPECT_EQ(buffer_->last_kernel_us(), -1.0);
  expect_rows_match(dispatch(l));
  EXPECT_TRUE(buffer_->last_kernel_times().empty());
}

TEST_F(KernelTimes, OnNamesEachKernelOfTheLastCall) {
  buffer_->set_kernel_timing(true);
  EXPECT_TRUE(buffer_->kernel_timing());
  const DispatchLayout l = layout();
  const std::vector<KernelTime> layout_kernels = buffer_->last_kernel_times();
  EXPECT_EQ(names_of(layout_kernels), std::vector<std::string>{"layout"});
  expect_plausible(layout_kernels);

  const DispatchResult got = dispatch(l);
  const std::vector<KernelTime> dispatch_kernels = buffer_->last_kernel_times();
  ASSERT_GE(dispatch_kernels.size(), 2u) << "notify and at least one data kernel";
  EXPECT_EQ(dispatch_kernels.front().name, "notify");
  expect_plausible(dispatch_kernels);
  const double sum = std::accumulate(dispatch_kernels.begin(), dispatch_kernels.end(), 0.0,
                                     [](double s, const KernelTime& k) { return s + k.us; });
  EXPECT_NEAR(buffer_->last_kernel_us(), sum, 1e-6 * sum);
  expect_rows_match(got);
}

TEST_F(KernelTimes, SwitchedBetweenCallsReportsOnlyTimedCalls) {
  buffer_->set_kernel_timing(true);
  (void)layout();
  ASSERT_EQ(buffer_->last_kernel_times().size(), 1u);
  buffer_->set_kernel_timing(false);
  EXPECT_TRUE(buffer_->last_kernel_times().empty());  // off: nothing, whatever was recorded before
  const DispatchLayout l = layout();
  EXPECT_TRUE(buffer_->last_kernel_times().empty());
  buffer_->set_kernel_timing(true);
  expect_rows_match(dispatch(l));
  EXPECT_EQ(buffer_->last_kernel_times().front().name, "notify");
}

TEST_F(KernelTimes, DispatchGivenTopkAloneReportsTheFusedLaunchFirst) {
  buffer_->set_kernel_timing(true);
  expect_rows_match(dispatch(nullptr));
  const std::vector<KernelTime> kernels = buffer_->last_kernel_times();
  ASSERT_GE(kernels.size(), 2u);
  EXPECT_EQ(kernels.front().name, "layout-notify");
  const std::vector<std::string> names = names_of(kernels);
  EXPECT_EQ(std::count(names.begin(), names.end(), std::string("notify")), 0);
  expect_plausible(kernels);
}

TEST_F(KernelTimes, NotifyTraceIsEmptyUnlessAskedFor) {
  if (std::getenv("EPCOMM_HT_TRACE") != nullptr) GTEST_SKIP() << "EPCOMM_HT_TRACE is set here";
  expect_rows_match(dispatch(layout()));
  EXPECT_TRUE(buffer_->notify_trace().empty());
}

TEST_F(KernelTimes, NotifyTraceStampsEveryPointInOrderOncePerCall) {
  // Every rank makes its Buffer with the variable set (a collective call), then unsets it.
  buffer_.reset();
  setenv("EPCOMM_HT_TRACE", "1", 1);
  buffer_ =
      std::make_unique<Buffer>(gpu_env().bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 27});
  unsetenv("EPCOMM_HT_TRACE");
  // Both forms: notify's own kernel, and notify's block in the fused launch (one entry a call
  // whatever that launch's grid: 256 tokens take 2 blocks here).
  constexpr int kCalls = 6;
  for (int i = 0; i < kCalls / 2; ++i) {
    expect_rows_match(dispatch(layout()));
    expect_rows_match(dispatch(nullptr));
  }
  const LlTrace trace = buffer_->notify_trace(/*clear=*/true);
  ASSERT_FALSE(trace.empty());
  EXPECT_EQ(trace.blocks, 1);
  const auto points = static_cast<int>(trace.points.size());
  ASSERT_EQ(trace.stamps.size(), static_cast<std::size_t>(trace.ring) * static_cast<std::size_t>(points));
  ASSERT_EQ(trace.point("launch"), 0);
  // Between launch and entry: the fused launch's layout phases, stamped by its calls only.
  const int entry = trace.point("entry");
  ASSERT_EQ(trace.point("ticketed"), 1);
  ASSERT_EQ(entry, 5);
  ASSERT_EQ(trace.point("exit"), points - 1);
  // counts-stored and placed run side by side (two groups of warps after flags-seen): each follows
  // flags-seen, in either order, and exit follows both.
  const int flags_seen = trace.point("flags-seen"), counts_stored = trace.point("counts-stored");
  const int placed = trace.point("placed");
  ASSERT_EQ(counts_stored, flags_seen + 1);
  ASSERT_EQ(placed, counts_stored + 1);
  int slots_used = 0, fused_slots = 0;
  for (int slot = 0; slot < trace.ring; ++slot) {
    const std::uint64_t* s = trace.stamps.data() + static_cast<std::ptrdiff_t>(slot) * points;
    if (s[0] == 0) {
      for (int p = 0; p < points; ++p) EXPECT_EQ(s[p], 0u) << "slot " << slot << " point " << trace.points[p];
      continue;
    }
    ++slots_used;
    const bool fused = s[1] != 0;
    fused_slots += fused ? 1 : 0;
    int previous = 0;
    for (int p = 1; p < points; ++p) {
      if (p < entry && !fused) {
        EXPECT_EQ(s[p], 0u) << "slot " << slot << ": " << trace.points[p]
                            << " stamped by notify's own kernel";
        continue;
      }
      const int after = p == placed ? flags_seen : previous;
      EXPECT_GE(s[p], s[after]) << "slot " << slot << ": " << trace.points[p] << " before "
                                << trace.points[after];
      previous = p;
    }
    EXPECT_GE(s[points - 1], s[counts_stored]) << "slot " << slot << ": exit before counts-stored";
    // A bound to catch garbage (a stamp of another call or none), not a timing claim: one second.
    EXPECT_LT(s[points - 1] - s[0], std::uint64_t{1000000000}) << "slot " << slot;
  }
  EXPECT_EQ(slots_used, kCalls);
  EXPECT_EQ(fused_slots, kCalls / 2);
  // Cleared by the read: the next read holds nothing until the next call.
  const LlTrace after = buffer_->notify_trace();
  EXPECT_TRUE(std::all_of(after.stamps.begin(), after.stamps.end(), [](std::uint64_t v) { return v == 0; }));
}

}  // namespace
}  // namespace epcomm::test
