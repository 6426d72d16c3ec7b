// Per-peer telemetry on the GPUs (BufferOptions::peer_telemetry, Buffer::peer_telemetry): the bytes
// each operation moved to and from each peer equal what the reference's routing implies, a peer that
// is late shows as waited on (slowest_peer names it), and clearing zeroes the counters. Not counted
// yet: the bytes low-latency dispatch receives (a staged row is copied once per local expert, so
// per-(source, token) counts need a dedup the receive phase does not do).
#include <chrono>
#include <thread>
#include <vector>

#include "epcomm/buffer.hpp"
#include "epcomm/telemetry.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ll_case.hpp"

namespace epcomm::test {
namespace {

const PeerTraffic* find(const std::vector<PeerTraffic>& rows, const std::string& op, int peer) {
  for (const PeerTraffic& r : rows)
    if (r.operation == op && r.peer == peer) return &r;
  return nullptr;
}

// Tokens of `topk` ([T, k]) with at least one expert on `rank` (experts_per_rank each).
std::uint64_t tokens_reaching(const std::vector<std::int64_t>& topk, int k, int experts_per_rank, int rank) {
  std::uint64_t n = 0;
  for (std::size_t t = 0; t < topk.size() / static_cast<std::size_t>(k); ++t) {
    bool hit = false;
    for (int j = 0; j < k; ++j) {
      const std::int64_t e = topk[t * static_cast<std::size_t>(k) + static_cast<std::size_t>(j)];
      hit = hit || (e >= 0 && e / experts_per_rank == rank);
    }
    n += hit ? 1 : 0;
  }
  return n;
}

TEST(Telemetry, HighThroughputBytesFollowTheRouting) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const HtCase c{.num_tokens = 96, .hidden = 1024, .num_topk = 4, .experts_per_rank = 8, .seed = 81};
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .peer_telemetry = true});
  std::vector<ref::HtRankInput> inputs;
  for (int r = 0; r < env.world; ++r) inputs.push_back(make_ht_input(c, r, env.world));
  const ref::HtRankInput& in = inputs[static_cast<std::size_t>(env.rank)];
  DeviceTensor x = upload(in.x, DType::kBF16, {in.num_tokens, c.hidden});
  DeviceTensor topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, c.num_topk});
  DeviceTensor weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});
  DispatchLayout layout =
      buffer.get_dispatch_layout(topk, c.experts_per_rank * env.world, {.stream = env.stream});
  DispatchArgs args = dispatch_args(x, topk, weights, layout);
  args.config.num_sms = c.num_sms;
  const DispatchResult d = buffer.dispatch(args, {.stream = env.stream});
  CombineArgs ca;
  ca.x = d.recv_x;
  ca.topk_weights = d.recv_topk_weights;
  ca.handle = &d.handle;
  ca.config.num_sms = c.num_sms;
  buffer.combine(ca, {.stream = env.stream});
  const std::vector<PeerTraffic> rows = buffer.peer_telemetry(/*clear=*/true);
  // A dispatched row: payload, top-k indices (int64) and weights, and the source index.
  const std::uint64_t row = static_cast<std::uint64_t>(c.hidden) * 2 + c.num_topk * (8 + 4) + 4;
  const std::uint64_t back = static_cast<std::uint64_t>(c.hidden) * 2 + c.num_topk * 4;
  for (int p = 0; p < env.world; ++p) {
    if (p == env.rank) continue;
    const std::uint64_t to_p = tokens_reaching(in.topk_idx, c.num_topk, c.experts_per_rank, p);
    const auto& theirs = inputs[static_cast<std::size_t>(p)];
    const std::uint64_t from_p = tokens_reaching(theirs.topk_idx, c.num_topk, c.experts_per_rank, env.rank);
    const PeerTraffic* dispatch = find(rows, "dispatch", p);
    const PeerTraffic* combine = find(rows, "combine", p);
    ASSERT_NE(dispatch, nullptr) << "peer " << p;
    ASSERT_NE(combine, nullptr) << "peer " << p;
    EXPECT_EQ(dispatch->bytes_sent, to_p * row);
    EXPECT_EQ(dispatch->bytes_received, from_p * row);
    EXPECT_EQ(combine->bytes_sent, from_p * back);  // the peer's rows go back to it
    EXPECT_EQ(combine->bytes_received, to_p * back);
  }
  EXPECT_TRUE(buffer.peer_telemetry().empty()) << "cleared";
}

// A low-latency Buffer of `c` with telemetry on, every rank's inputs, and this rank's uploaded.
struct CountingLl {
  explicit CountingLl(const LlCase& ll)
      : buffer(gpu_env().bootstrap, options(ll), ll.buffer_options(gpu_env().world)),
        inputs(make_inputs(ll, gpu_env().world, 0)),
        di(upload_inputs(mine(), ll)) {}
  static BufferOptions options(const LlCase& ll) {
    BufferOptions bo = ll_buffer_options(ll.buffer_options(gpu_env().world), gpu_env().world);
    bo.peer_telemetry = true;
    return bo;
  }
  const RankData& mine() const { return inputs[static_cast<std::size_t>(gpu_env().rank)]; }

  Buffer buffer;
  std::vector<RankData> inputs;
  DeviceInputs di;
};

TEST(Telemetry, LowLatencyBytesSentFollowTheRouting) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const LlCase c{.max_tokens = 32, .hidden = 1024, .num_topk = 4, .experts_per_rank = 4, .seed = 82};
  CountingLl ll(c);
  Buffer& buffer = ll.buffer;
  const RankData& mine = ll.mine();
  const DeviceInputs& di = ll.di;
  buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
  finish(buffer);
  const std::vector<PeerTraffic> rows = buffer.peer_telemetry();
  const std::uint64_t row =
      static_cast<std::uint64_t>(c.hidden) + 4u * static_cast<std::uint64_t>(c.hidden / 128);
  for (int p = 0; p < env.world; ++p) {
    if (p == env.rank) continue;
    const std::uint64_t to_p = tokens_reaching(mine.in.topk_idx, c.num_topk, c.experts_per_rank, p);
    const PeerTraffic* sent = find(rows, "low-latency dispatch", p);
    if (to_p == 0) continue;
    ASSERT_NE(sent, nullptr) << "peer " << p;
    EXPECT_EQ(sent->bytes_sent, to_p * row) << "peer " << p;
  }
}

// Low-latency combine: one float32 partial row per token goes back to the token's rank from each
// other rank holding one of its experts (BF16 dispatch, y = the received rows).
TEST(Telemetry, LowLatencyCombineBytesFollowTheRouting) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  const LlCase c{
      .max_tokens = 32, .hidden = 1024, .num_topk = 4, .experts_per_rank = 4, .use_fp8 = false, .seed = 83};
  CountingLl ll(c);
  Buffer& buffer = ll.buffer;
  const std::vector<RankData>& inputs = ll.inputs;
  const RankData& mine = ll.mine();
  const DeviceInputs& di = ll.di;
  const CallOptions call{.stream = env.stream};
  const LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(false), call);
  buffer.low_latency_combine(d.recv_x, di.topk, di.weights, d.handle, {}, call);
  finish(buffer);
  const std::vector<PeerTraffic> rows = buffer.peer_telemetry();
  const std::uint64_t partial = 4u * static_cast<std::uint64_t>(c.hidden);
  for (int p = 0; p < env.world; ++p) {
    if (p == env.rank) continue;
    const std::uint64_t mine_on_p = tokens_reaching(mine.in.topk_idx, c.num_topk, c.experts_per_rank, p);
    const std::uint64_t theirs_here = tokens_reaching(inputs[static_cast<std::size_t>(p)].in.topk_idx,
                                                      c.num_topk, c.experts_per_rank, env.rank);
    const PeerTraffic* combine = find(rows, "low-latency combine", p);
    if (mine_on_p == 0 && theirs_here == 0) continue;
    ASSERT_NE(combine, nullptr) << "peer " << p;
    EXPECT_EQ(combine->bytes_sent, theirs_here * partial) << "peer " << p;
    EXPECT_EQ(combine->bytes_received, mine_on_p * partial) << "peer " << p;
  }
}

// Rank 1 arrives half a second late: rank 0's count exchange polls for it, and the telemetry
// names it (the assertion is that a wait was counted and on whom, not how fast anything ran).
TEST(Telemetry, ALatePeerIsTheSlowest) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer";
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .peer_telemetry = true});
  if (env.rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  buffer.barrier({.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  if (env.rank == 0) {
    const std::vector<PeerTraffic> rows = buffer.peer_telemetry();
    const PeerTraffic* barrier = find(rows, "barrier", 1);
    ASSERT_NE(barrier, nullptr);
    EXPECT_GE(barrier->waits, 1u);
    EXPECT_GT(barrier->wait_ns, 100000000u);  // well over 100 ms of the 500 ms delay
    EXPECT_EQ(slowest_peer(rows), 1);
  }
}

}  // namespace
}  // namespace epcomm::test
