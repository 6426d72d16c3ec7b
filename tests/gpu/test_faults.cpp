// Faults between ranks that must end in a clear epcomm::Error on every surviving rank, never a hang
// or corrupted rows (issue 22): peers that make different calls (the call signature exchanged with
// the counts, or in the barrier that opens a combine or a cached dispatch, core/call_signature.hpp), and recovery without a restart after a timeout (a new
// bootstrap and Buffer among the survivors). Each case makes its own Buffer: a mismatch or a
// timeout leaves the Buffer failed (docs/reliability.md), and the case destroys it. Run on 3 ranks
// sharing the GPUs where there are fewer (gpu.test_faults; the recovery case needs the third).
#include <chrono>
#include <string>
#include <thread>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ht_masked_check.hpp"
#include "ll_case.hpp"

namespace epcomm::test {
namespace {

// Calls that must succeed (or meet a mismatch) keep the default bound (EPCOMM_TIMEOUT_MS: long
// where ranks share a GPU and take turns); the one that must time out gets a short one of its own.
constexpr std::int64_t kTimeoutMs = -1;
constexpr std::int64_t kShortMs = 10000;

// Runs `call` (and then check_status(), for calls that report on the device only) and expects the
// device's report of a peer mismatch naming `field`, the values and a peer.
template <typename Call>
void expect_peer_mismatch(Buffer& buffer, Call&& call, const std::string& field) {
  try {
    call();
    EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
    buffer.check_status();
    ADD_FAILURE() << "expected a peer mismatch on " << field;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find("peer mismatch"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(field + " is "), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(" at rank "), std::string::npos) << e.what();
  }
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
}

// One rank's high-throughput dispatch inputs (BF16), with its layout.
struct HtInputs {
  DeviceTensor x, topk, weights;
  DispatchLayout layout;
  DispatchArgs args;
};
HtInputs ht_inputs(Buffer& buffer, std::int64_t hidden, int num_topk, int num_sms) {
  const GpuEnv& env = gpu_env();
  constexpr std::int64_t kTokens = 64;
  const int num_experts = 8 * env.world;
  HtInputs in;
  in.x = upload(random_bf16(seed_for(7, env.rank), static_cast<std::size_t>(kTokens * hidden)), DType::kBF16,
                {kTokens, hidden});
  in.topk = upload(random_topk(seed_for(8, env.rank), kTokens, num_topk, num_experts, 0.1), DType::kI64,
                   {kTokens, num_topk});
  in.weights = upload(std::vector<float>(static_cast<std::size_t>(kTokens * num_topk), 0.5f), DType::kF32,
                      {kTokens, num_topk});
  in.layout = buffer.get_dispatch_layout(in.topk, num_experts, {.stream = env.stream});
  in.args = dispatch_args(in.x, in.topk, in.weights, in.layout);
  in.args.config.num_sms = num_sms;
  return in;
}

// Every rank dispatches; the last rank's call differs in one value.
void expect_ht_mismatch(std::int64_t hidden_last, int topk_last, int sms_last, const std::string& field) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const bool last = env.rank == env.world - 1;
  Buffer buffer(env.bootstrap,
                BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .timeout_ms = kTimeoutMs});
  HtInputs in = ht_inputs(buffer, last ? hidden_last : 2048, last ? topk_last : 4, last ? sms_last : 8);
  expect_peer_mismatch(
      buffer, [&] { buffer.dispatch(in.args, {.stream = env.stream}); }, field);
}  // every rank meets in the destructor

TEST(PeerMismatch, HtDispatchHidden) {
  expect_ht_mismatch(4096, 4, 8, "hidden");
}
TEST(PeerMismatch, HtDispatchTopk) {
  expect_ht_mismatch(2048, 2, 8, "num_topk");
}
TEST(PeerMismatch, HtDispatchNumSms) {
  expect_ht_mismatch(2048, 4, 6, "num_sms (blocks)");
}

// Every rank dispatches alike; then a combine, or a cached dispatch through the handle, in which the
// last rank's call differs in hidden or num_sms: found in the barrier that opens the call, before
// any row moves (these calls exchange no counts). The call's kernels still run to their end: with
// other num_sms, until the short timeout; the error is the mismatch, reported first.
// A Buffer (with the short timeout) after one dispatch that every rank made alike.
struct AfterDispatch {
  Buffer buffer{gpu_env().bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .timeout_ms = kShortMs}};
  HtInputs in = ht_inputs(buffer, 2048, 4, 8);
  DispatchResult got = buffer.dispatch(in.args, {.stream = gpu_env().stream});
  AfterDispatch() {
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
    buffer.check_status();
  }
};

void expect_mismatch_after_dispatch(bool combine, std::int64_t hidden_last, int sms_last,
                                    const std::string& field) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const bool last = env.rank == env.world - 1;
  AfterDispatch d;
  Buffer& buffer = d.buffer;
  const HtInputs& in = d.in;
  const DispatchResult& got = d.got;
  // Combine takes the received rows back; a cached dispatch sends the tokens again.
  const std::int64_t rows = combine ? got.recv_x.size(0) : in.x.size(0);
  const std::int64_t hidden = last ? hidden_last : 2048;
  const DeviceTensor x = upload(random_bf16(seed_for(9, env.rank), static_cast<std::size_t>(rows * hidden)),
                                DType::kBF16, {rows, hidden});
  const Config config{.num_sms = last ? sms_last : 8};
  if (combine) {
    const CombineArgs args{.x = x, .handle = &got.handle, .config = config};
    expect_peer_mismatch(buffer, [&] { buffer.combine(args, {.stream = env.stream}); }, field);
  } else {
    DispatchArgs args;
    args.x = x;
    args.handle = &got.handle;
    args.config = config;
    expect_peer_mismatch(buffer, [&] { buffer.dispatch(args, {.stream = env.stream}); }, field);
  }
}

TEST(PeerMismatch, HtCombineHidden) {
  expect_mismatch_after_dispatch(/*combine=*/true, 4096, 8, "hidden");
}
TEST(PeerMismatch, HtCombineNumSms) {
  expect_mismatch_after_dispatch(/*combine=*/true, 2048, 6, "num_sms (blocks)");
}
TEST(PeerMismatch, CachedDispatchHidden) {
  expect_mismatch_after_dispatch(/*combine=*/false, 4096, 8, "hidden");
}
// A cached dispatch keeps the handle's sender blocks, so num_sms cannot differ between peers: fewer
// is bad input on the rank that asks (refused before launch, naming the argument), and its peers,
// already in the call, time out naming that rank.
TEST(PeerMismatch, CachedDispatchWithFewerSmsIsRefusedWhereAsked) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const int last = env.world - 1;
  AfterDispatch d;
  Buffer& buffer = d.buffer;
  DispatchArgs args;
  args.x = d.in.x;
  args.handle = &d.got.handle;
  args.config = Config{.num_sms = env.rank == last ? 6 : 8};
  try {
    buffer.dispatch(args, {.stream = env.stream});
    EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
    buffer.check_status();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    if (env.rank == last) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument) << e.what();
      EXPECT_NE(e.message().find("config.num_sms"), std::string::npos) << e.what();
    } else {
      EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
      EXPECT_NE(e.message().find("waiting for rank " + std::to_string(last)), std::string::npos) << e.what();
      EXPECT_NE(e.message().find("dispatch"), std::string::npos) << e.what();
    }
  }
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
}

// A larger num_sms on one rank is no mismatch for a cached dispatch: every rank runs the handle's
// sender blocks, and the call's signature says so.
TEST(PeerMismatch, CachedDispatchWithMoreSmsRunsTheHandlesBlocks) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  AfterDispatch d;
  DispatchArgs args;
  args.x = d.in.x;
  args.handle = &d.got.handle;
  args.config = Config{.num_sms = env.rank == env.world - 1 ? 12 : 8};
  const DispatchResult again = d.buffer.dispatch(args, {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  d.buffer.check_status();
  EXPECT_EQ(again.recv_x.size(0), d.got.recv_x.size(0));
}

// Low-latency dispatch with the last rank's call differing (num_topk, or FP8 against BF16).
void expect_ll_mismatch(int topk_last, bool fp8_last, const std::string& field) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const bool last = env.rank == env.world - 1;
  const LlCase base{.max_tokens = 16, .hidden = 512, .num_topk = 4, .experts_per_rank = 4, .seed = 11};
  LlCase mine = base;
  if (last) {
    mine.num_topk = topk_last;
    mine.use_fp8 = fp8_last;
  }
  const LowLatencyOptions o = base.buffer_options(env.world);
  Buffer buffer(env.bootstrap, ll_buffer_options(o, env.world, kTimeoutMs), o);
  const DeviceInputs di =
      upload_inputs(make_inputs(mine, env.world, 0)[static_cast<std::size_t>(env.rank)], mine);
  expect_peer_mismatch(
      buffer,
      [&] { buffer.low_latency_dispatch(di.x, di.topk, mine.options(false), {.stream = env.stream}); },
      field);
}

TEST(PeerMismatch, LlDispatchTopk) {
  expect_ll_mismatch(2, true, "num_topk");
}
TEST(PeerMismatch, LlDispatchFp8) {
  expect_ll_mismatch(4, false, "flags");
}

// Recovery: rank 2 stalls (makes no call for longer than the timeout); ranks 0 and 1 time out in
// dispatch, destroy their Buffer (its teardown waits for rank 2's, bounded), make a new bootstrap
// among themselves (make_survivor_bootstrap: a new port and token) and a new Buffer on it, and
// dispatch and combine correctly as a group of 2.
TEST(Recovery, SurvivorsRebuildAndCarryOnAfterATimeout) {
  const GpuEnv& env = gpu_env();
  if (env.world != 3) GTEST_SKIP() << "runs on 3 ranks (gpu.test_faults)";
  const HtCase c{.num_tokens = 64, .hidden = 512, .num_topk = 4, .experts_per_rank = 8, .biases = false,
                 .seed = 71};
  {
    Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .timeout_ms = kShortMs});
    if (env.rank == 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2 * kShortMs));
    } else {
      HtInputs in = ht_inputs(buffer, 512, 4, 8);
      const auto start = std::chrono::steady_clock::now();
      expect_peer_timeout([&] { buffer.dispatch(in.args, {.stream = env.stream}); }, "waiting for rank 2");
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2 * kShortMs));
    }
  }  // every rank's teardown meets here
  if (env.rank == 2) return;  // left out of the new group
  const SurvivorGroup group{.survivors = {0, 1}};
  std::shared_ptr<Bootstrap> next = make_survivor_bootstrap(tcp_bootstrap_options_from_env(), group);
  ASSERT_EQ(next->size(), 2);
  ASSERT_EQ(next->rank(), env.rank);
  Buffer buffer(next, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26,
                                    .timeout_ms = kTimeoutMs,
                                    .allocator = poisoning_allocator()});
  run_ht_masked(buffer, c, {0, 0});
}

}  // namespace
}  // namespace epcomm::test
