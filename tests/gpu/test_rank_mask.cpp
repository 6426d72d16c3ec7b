// Rank masking on the GPUs (SPEC "Rank masking"), run on 3 ranks (gpu.test_rank_mask, GPUs shared
// where there are fewer): rank 2 is masked on ranks 0 and 1 and makes no call at all; 0 and 1
// complete layout, high-throughput dispatch and combine, and low-latency dispatch and combine,
// matching the CPU reference of the masked operations (ref::mask_ranks). Then every rank clears the
// mask (collective) and all three run unmasked, matching the plain reference. Outputs come from a
// poisoning allocator, so a row the kernels forget shows up.
#include <string>
#include <vector>

#include "checks.hpp"
#include "epcomm/buffer.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ht_masked_check.hpp"
#include "ll_check.hpp"

namespace epcomm::test {
namespace {

constexpr int kWorld = 3;
constexpr int kMasked = 2;
// The bound of the calls that must time out (others keep EPCOMM_TIMEOUT_MS: long where ranks share
// a GPU and take turns); long enough that the survivors' later calls do not time out by accident.
constexpr std::int64_t kShortMs = 10000;

std::vector<std::uint8_t> mask_of(bool masked) {
  std::vector<std::uint8_t> m(kWorld, 0);
  if (masked) m[kMasked] = 1;
  return m;
}

// ---- low-latency --------------------------------------------------------------------------------

// This rank's routing as the GPU produced it, in the reference's terms.
ref::LlRankOutput routing_of(const GotDispatch& got, const LlCase& c) {
  ref::LlRankOutput r;
  r.capacity = kWorld * c.max_tokens;
  r.layout_range = got.layout_range;
  r.src_info = got.src_info;
  return r;
}

// Low-latency dispatch and combine (BF16, y echoing each row's token, so the combine does not
// depend on the GPU's row order) against the reference of the masked operations. With `zero_copy`,
// y is written into the Buffer's next combine buffer (with CUDA IPC the owners then pull their rows
// from the holders, which must skip a masked one).
void run_ll(Buffer& buffer, const LlCase& c, const std::vector<std::uint8_t>& mask, bool zero_copy = false) {
  const GpuEnv& env = gpu_env();
  const ref::Geometry g = geometry_of(c, kWorld);
  const std::vector<RankData> inputs = make_inputs(c, kWorld, 0);
  std::vector<ref::LlRankInput> ref_in;
  std::vector<std::vector<float>> weights;
  for (const auto& d : inputs) ref_in.push_back(d.in);
  const std::vector<ref::LlRankInput> live = ref::mask_ranks(g, ref_in, mask);
  for (int r = 0; r < kWorld; ++r)
    weights.push_back(mask[static_cast<std::size_t>(r)] ? std::vector<float>{}
                                                        : inputs[static_cast<std::size_t>(r)].weights);
  const auto want = ref::ll_dispatch(g, c.hidden, c.max_tokens, live, ref_options(c));
  const DeviceInputs di = upload_inputs(inputs[static_cast<std::size_t>(env.rank)], c);
  const CallOptions call{.stream = env.stream};

  poison_outputs(buffer);
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(false), call);
  finish(buffer);
  const GotDispatch got = download_dispatch(d);
  expect_dispatch_matches(got, want[static_cast<std::size_t>(env.rank)], c, kWorld, "masked dispatch");

  const auto my_y = make_y(YMode::kEcho, c, kWorld, env.rank, 0, routing_of(got, c), inputs);
  DeviceTensor uploaded = upload(my_y, DType::kBF16, {c.experts_per_rank, kWorld * c.max_tokens, c.hidden});
  Tensor y = uploaded;
  if (zero_copy) {
    y = buffer.get_next_low_latency_combine_buffer(d.handle);
    // On the call's stream: a device-to-device cudaMemcpy may return before it is done, and the
    // stream (non-blocking) would not wait for it; the peers read y once the combine starts.
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(y.data, uploaded.data(), my_y.size() * sizeof(std::uint16_t),
                                      cudaMemcpyDeviceToDevice, env.stream));
  }
  LlCombineResult cr =
      buffer.low_latency_combine(y, di.topk, di.weights, d.handle, {.zero_copy = zero_copy}, call);
  finish(buffer);
  std::vector<std::vector<std::uint16_t>> ys;
  for (int r = 0; r < kWorld; ++r)
    ys.push_back(make_y(YMode::kEcho, c, kWorld, r, 0, want[static_cast<std::size_t>(r)], inputs));
  const auto want_out = ref::ll_combine(g, c.hidden, want, ys, live, weights);
  expect_same(download<std::uint16_t>(cr.out), want_out[static_cast<std::size_t>(env.rank)],
              want_out[static_cast<std::size_t>(env.rank)].size(), "masked combine");
}

// ---- the cases ----------------------------------------------------------------------------------

class RankMask : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gpu_env().world != kWorld)
      GTEST_SKIP() << "runs on exactly " << kWorld << " ranks (gpu.test_rank_mask)";
  }
  static bool live() { return gpu_env().rank != kMasked; }
};

TEST_F(RankMask, HighThroughputSkipsAMaskedRankThatNeverCalls) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap,
                BufferOptions{.num_nvl_bytes = std::int64_t{1} << 27, .allocator = poisoning_allocator()});
  const HtCase c{
      .num_tokens = 96, .hidden = 1024, .num_topk = 4, .experts_per_rank = 8, .biases = false, .seed = 31};
  if (live()) {
    buffer.mask_rank(kMasked);
    EXPECT_EQ(buffer.masked_ranks(), (std::vector<bool>{false, false, true}));
    run_ht_masked(buffer, c, mask_of(true));
    run_ht_masked(
        buffer,
        {.num_tokens = 40, .hidden = 512, .num_topk = 2, .experts_per_rank = 8, .biases = false, .seed = 32},
        mask_of(true), /*derive_layout=*/true);  // a second call: the exchanges stay in step without rank 2,
                                                 // layout and notify in one launch
  }
  buffer.clear_rank_mask();  // rank 2 comes back here
  EXPECT_EQ(buffer.masked_ranks(), std::vector<bool>(kWorld, false));
  run_ht_masked(buffer, c, mask_of(false));
}

TEST_F(RankMask, LowLatencySkipsAMaskedRankThatNeverCalls) {
  const GpuEnv& env = gpu_env();
  const LlCase c{
      .max_tokens = 16, .hidden = 512, .num_topk = 4, .experts_per_rank = 4, .use_fp8 = false, .seed = 41};
  const LowLatencyOptions o = c.buffer_options(kWorld);
  Buffer buffer(env.bootstrap, ll_buffer_options(o, kWorld), o);
  if (live()) {
    buffer.mask_rank(kMasked);
    run_ll(buffer, c, mask_of(true));
    run_ll(buffer, c, mask_of(true));  // the other parity of the double buffer
    run_ll(buffer, c, mask_of(true), /*zero_copy=*/true);
    run_ll(buffer, c, mask_of(true), /*zero_copy=*/true);
  }
  buffer.clear_rank_mask();
  run_ll(buffer, c, mask_of(false));
  run_ll(buffer, c, mask_of(false), /*zero_copy=*/true);
}

// mask_on_timeout: ranks 0 and 1 dispatch while rank 2 stays away; the dispatch that waited for it
// throws the timeout naming rank 2, each survivor has masked rank 2 itself, and the next calls
// work without it. A handle made before the mask changed is refused.
TEST_F(RankMask, MaskOnTimeoutLetsTheSurvivorsCarryOn) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 27,
                                             .timeout_ms = kShortMs,
                                             .allocator = poisoning_allocator(),
                                             .mask_on_timeout = true});
  const HtCase c{
      .num_tokens = 64, .hidden = 512, .num_topk = 4, .experts_per_rank = 8, .biases = false, .seed = 51};
  if (live()) {
    const ref::HtRankInput in = make_ht_input(c, env.rank, kWorld);
    DeviceTensor x = upload(in.x, DType::kBF16, {in.num_tokens, c.hidden});
    DeviceTensor topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, c.num_topk});
    DeviceTensor weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});
    DispatchLayout layout =
        buffer.get_dispatch_layout(topk, c.experts_per_rank * kWorld, {.stream = env.stream});
    DispatchArgs args = dispatch_args(x, topk, weights, layout);
    args.config.num_sms = c.num_sms;
    expect_peer_timeout([&] { buffer.dispatch(args, {.stream = env.stream}); }, "timed out");
    EXPECT_EQ(buffer.masked_ranks(), (std::vector<bool>{false, false, true}));
    EXPECT_NO_THROW(buffer.check_status());
    run_ht_masked(buffer, c, mask_of(true));
  }
  buffer.clear_rank_mask();
  run_ht_masked(buffer, c, mask_of(false));
}

// The same in low-latency mode: the first dispatch times out waiting for rank 2's signals; the
// survivors mask it, and (their credits having been given despite the timeout) keep exchanging.
TEST_F(RankMask, LowLatencyMaskOnTimeoutLetsTheSurvivorsCarryOn) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.max_tokens = 16, .hidden = 512, .num_topk = 4, .experts_per_rank = 4, .use_fp8 = false,
                 .seed = 61};
  const LowLatencyOptions o = c.buffer_options(kWorld);
  BufferOptions bo = ll_buffer_options(o, kWorld, kShortMs);
  bo.mask_on_timeout = true;
  Buffer buffer(env.bootstrap, bo, o);
  if (live()) {
    const DeviceInputs di = upload_inputs(make_inputs(c, kWorld, 0)[static_cast<std::size_t>(env.rank)], c);
    buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
    expect_peer_timeout([&] { finish(buffer); }, "low-latency dispatch timed out");
    EXPECT_EQ(buffer.masked_ranks(), (std::vector<bool>{false, false, true}));
    for (int i = 0; i < 3; ++i) run_ll(buffer, c, mask_of(true));  // both parities, and a credit wait
    run_ll(buffer, c, mask_of(true), /*zero_copy=*/true);
  }
  buffer.clear_rank_mask();
  run_ll(buffer, c, mask_of(false));
  // The survivors made 5 dispatches, rank 2 none: after the reset every rank's next call uses the
  // same halves, which a pulled zero-copy combine needs (it reads its peers' halves as its own).
  run_ll(buffer, c, mask_of(false), /*zero_copy=*/true);
}

}  // namespace
}  // namespace epcomm::test
