// Low-latency dispatch and combine on the GPUs against the CPU reference, every element, over the
// transport this program was built for (ll_case.hpp: CUDA IPC, NVSHMEM for every peer, or across
// NVLink domains: stores within a domain, NVSHMEM between). Dispatch:
// per local expert and source rank, the set of rows (token, payload bytes, scales) must equal the
// reference's, compared through layout_range and src_info (the GPU may order rows differently);
// payloads and scales bit-exactly. Combine: bit-exactly against ref::ll_combine run on the GPU's
// own routing (every rank's layout_range and src_info, gathered). Outputs are poisoned (checks.hpp:
// NaN for every float type, an impossible value for every index) before every run, so anything a
// kernel forgets to write shows up.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "ll_check.hpp"
#include "scoped_env.hpp"

namespace epcomm::test {
namespace {

// ---- fixture: one buffer per low-latency configuration ---------------------------------------------

class Ll : public ::testing::Test {
 protected:
#if defined(EPCOMM_TEST_LL_NVSHMEM)
  // Catches (issue 18, item 1): one-rank runs of this program counted as NVSHMEM coverage, though a
  // rank's traffic to itself bypasses NVSHMEM (transport/nvshmem_ll_peers.cuh). Below 2 ranks
  // every case skips (the program then exits 77; EPCOMM_REQUIRE_GPU=1 makes that a failure).
  void SetUp() override {
    if (gpu_env().world < 2)
      GTEST_SKIP() << "NVSHMEM needs 2 or more PEs here: a rank's traffic to itself bypasses it";
  }
#elif defined(EPCOMM_TEST_LL_MD)
  // With one domain this program would run the CUDA IPC path again, not what it is for.
  void SetUp() override {
    if (ll_test_domains(gpu_env().world) < 2)
      GTEST_SKIP() << "covers low-latency mode across NVLink domains: set EPCOMM_RANKS_PER_DOMAIN so the "
                   << gpu_env().world << " ranks form 2 or more (gpu.test_ll_md_2x2)";
  }
#endif
  // The buffer for c (made collectively; the previous one is destroyed when the options differ).
  static Buffer& buffer_for(const LlCase& c) {
    const LowLatencyOptions o = c.buffer_options(gpu_env().world);
    if (!buffer_ || o.max_tokens_per_rank != options_.max_tokens_per_rank || o.hidden != options_.hidden ||
        o.num_experts != options_.num_experts || o.max_topk != options_.max_topk ||
        o.num_blocks != options_.num_blocks) {
      ll_progress(buffer_ ? "destroying the previous Buffer (collective)" : "no Buffer yet");
      buffer_.reset();
      ll_progress("making a Buffer (collective): max_tokens " + std::to_string(o.max_tokens_per_rank) +
                  ", hidden " + std::to_string(o.hidden) + ", experts " + std::to_string(o.num_experts));
      buffer_ = std::make_unique<Buffer>(gpu_env().bootstrap, ll_buffer_options(o, gpu_env().world), o);
      ll_progress("Buffer ready");
      options_ = o;
    }
    return *buffer_;
  }
  static void TearDownTestSuite() {
    buffer_.reset();
  }
  static std::unique_ptr<Buffer> buffer_;
  static LowLatencyOptions options_;
};
std::unique_ptr<Buffer> Ll::buffer_;
LowLatencyOptions Ll::options_;

TEST_F(Ll, Fp8) {
  const LlCase c{.seed = 1};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Fp8RoundScale) {
  const LlCase c{.round_scale = true, .seed = 2};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Fp8Ue8m0) {
  const LlCase c{.round_scale = true, .use_ue8m0 = true, .seed = 3};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Ue8m0HiddenNotAMultipleOf512) {
  const LlCase c{.hidden = 640, .round_scale = true, .use_ue8m0 = true, .seed = 4};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, Bf16) {
  const LlCase c{.use_fp8 = false, .seed = 5};
  run_pair(buffer_for(c), c, {.y = YMode::kEcho});
}
TEST_F(Ll, SplitPhases) {
  for (const bool fp8 : {true, false}) {
    const LlCase c{.use_fp8 = fp8, .seed = 6};
    run_pair(buffer_for(c), c, {.hook = true, .salt = fp8 ? 1u : 2u});
  }
}
TEST_F(Ll, ZeroCopyCombine) {
  const LlCase c{.seed = 7};
  run_pair(buffer_for(c), c, {.zero_copy = true});
  run_pair(buffer_for(c), c, {.hook = true, .zero_copy = true, .salt = 1});
}
TEST_F(Ll, CombineIntoTheCallersTensor) {  // LlCombineOptions::out: no copy after the call
  const LlCase c{.seed = 31};
  run_pair(buffer_for(c), c, {.caller_out = true});
  run_pair(buffer_for(c), c, {.hook = true, .caller_out = true, .salt = 1});
  run_pair(buffer_for(c), c, {.zero_copy = true, .caller_out = true, .salt = 2});
}
TEST_F(Ll, Int32IndicesDuplicatesAndEmptySlots) {
  const LlCase c{.empty_fraction = 0.3, .duplicates = true, .idx32 = true, .seed = 8};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), c, {.zero_copy = true, .salt = 1});
}
TEST_F(Ll, RankWithNoTokens) {
  const LlCase c{.tokens_on_rank1 = 0, .seed = 9};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), c, {.hook = true, .salt = 1});
}
TEST_F(Ll, FewerTokensThanTheBound) {
  const LlCase c{.num_tokens = 77, .tokens_on_rank1 = 5, .seed = 10};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, OneTokenPerRank) {
  const LlCase c{.max_tokens = 1, .seed = 11};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), c, {.hook = true, .salt = 1});
}
TEST_F(Ll, TopkBound16) {
  const LlCase c{.num_topk = 16, .max_topk = 16, .experts_per_rank = 32, .seed = 12};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, ThousandTokensPerRank) {
  const LlCase c{.max_tokens = 1024, .hidden = 1024, .experts_per_rank = 8, .seed = 13};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c),
           LlCase{.max_tokens = 1024, .hidden = 1024, .experts_per_rank = 8, .use_fp8 = false, .seed = 14},
           {.hook = true, .y = YMode::kEcho});
}
TEST_F(Ll, MoreBlocksThanExperts) {  // several blocks share each expert's rows
  // Two experts per rank (four on one rank, so that top-4 has four distinct experts to pick).
  const LlCase c{.max_tokens = 256,
                 .hidden = 1024,
                 .num_topk = 4,
                 .max_topk = 4,
                 .experts_per_rank = std::max(2, 4 / gpu_env().world),
                 .seed = 15};
  run_pair(buffer_for(c), c);
}
// The grid's size (LowLatencyOptions::num_blocks) is what these cases are about; EPCOMM_LL_BLOCKS
// would override it.
bool grid_overridden() {
  return std::getenv("EPCOMM_LL_BLOCKS") != nullptr;
}
TEST_F(Ll, TwoBlocksBuildEveryList) {  // each block builds the lists of 40 experts or more: 2+ groups
  if (grid_overridden()) GTEST_SKIP() << "EPCOMM_LL_BLOCKS overrides the grid this case sets";
  const LlCase c{.max_tokens = 600,
                 .hidden = 512,
                 .experts_per_rank = std::max(40, 80 / gpu_env().world),
                 .duplicates = true,
                 .num_blocks = 2,
                 .seed = 19};
  run_pair(buffer_for(c), c);
  run_pair(buffer_for(c), LlCase{.max_tokens = 600,
                                 .num_tokens = 37,
                                 .hidden = 512,
                                 .experts_per_rank = std::max(40, 80 / gpu_env().world),
                                 .use_fp8 = false,
                                 .num_blocks = 2,
                                 .seed = 20},
           {.hook = true, .y = YMode::kEcho});
}
// Grid 1: each block builds 100+ groups of lists. 2000+ local experts: a prefix of several passes,
// and ~41 KB of dynamic shared memory, which with the kernel's static bytes passes the 48 KiB that
// a launch may use without opting in.
TEST_F(Ll, OneBlockManyLocalExperts) {
  if (grid_overridden()) GTEST_SKIP() << "EPCOMM_LL_BLOCKS overrides the grid this case sets";
  const LlCase c{.max_tokens = 16,
                 .hidden = 512,
                 .experts_per_rank = 10250 / (gpu_env().world + 1),
                 .num_blocks = 1,
                 .seed = 21};
  run_pair(buffer_for(c), c);
}
TEST_F(Ll, FullSizeDsv3) {  // ll-dsv3: 128 tokens, hidden 7168, top-8 of 288 experts
  const LlCase c{.hidden = 7168, .experts_per_rank = 288 / gpu_env().world, .seed = 16};
  if (288 % gpu_env().world != 0)
    GTEST_SKIP() << "288 experts do not split over " << gpu_env().world << " ranks";
  run_pair(buffer_for(c), c);
}

// 1, 3 and 64 alternating dispatch/combine pairs on one buffer, varying every option per call; the
// cumulative statistics add up.
TEST_F(Ll, AlternatingPairs) {
  const LlCase base{.max_tokens = 64, .hidden = 1024, .seed = 20};
  Buffer& buffer = buffer_for(base);
  for (const int pairs : {1, 3, 64}) {
    for (int i = 0; i < pairs; ++i) {
      LlCase c = base;
      c.use_fp8 = i % 4 != 3;
      c.round_scale = c.use_fp8 && i % 3 == 1;
      c.use_ue8m0 = c.round_scale && i % 2 == 0;
      c.num_tokens = 64 - (i % 5) * 13;
      c.idx32 = i % 2 == 1;
      c.seed = 1000u + static_cast<std::uint64_t>(pairs * 100 + i);
      run_pair(buffer, c,
               {.hook = i % 3 == 2, .zero_copy = i % 4 == 1, .y = c.use_fp8 ? YMode::kHash : YMode::kEcho});
    }
  }
  // Statistics: each dispatch adds the reference's recv_count. Catches (issue 18, item 5): wrong
  // counts added to the statistics (they were compared with the sum of the GPU's own recv_count).
  const GpuEnv& env = gpu_env();
  DeviceTensor stats = upload(std::vector<std::int32_t>(static_cast<std::size_t>(base.experts_per_rank), 0),
                              DType::kI32, {base.experts_per_rank});
  std::vector<std::int32_t> sum(static_cast<std::size_t>(base.experts_per_rank), 0);
  for (int i = 0; i < 3; ++i) {
    const std::vector<RankData> inputs = make_inputs(base, env.world, 500u + static_cast<std::uint64_t>(i));
    std::vector<ref::LlRankInput> ref_in;
    for (const auto& rd : inputs) ref_in.push_back(rd.in);
    const auto expected = ref::ll_dispatch(geometry_of(base, env.world), base.hidden, base.max_tokens, ref_in,
                                           ref_options(base));
    const DeviceInputs di = upload_inputs(inputs[static_cast<std::size_t>(env.rank)], base);
    LlDispatchOptions o = base.options(i == 1);
    o.cumulative_local_expert_recv_stats = stats;
    LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, o, {.stream = env.stream});
    if (d.receive) d.receive();
    finish(buffer);
    const auto& want = expected[static_cast<std::size_t>(env.rank)].recv_count;
    for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += want[e];
  }
  EXPECT_EQ(download<std::int32_t>(stats), sum);
}

// Two micro-batches in flight (the overlap pattern): both sends, both receives, both combines;
// every result of both stays valid until the end.
TEST_F(Ll, TwoOperationsInFlight) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const LlCase c{.seed = 30};
  Buffer& buffer = buffer_for(c);
  const CallOptions call{.stream = env.stream};
  std::vector<RankData> inputs[2];
  std::vector<ref::LlRankOutput> expected[2];
  DeviceInputs di[2];
  for (int b = 0; b < 2; ++b) {
    inputs[b] = make_inputs(c, R, 40u + static_cast<std::uint64_t>(b));
    std::vector<ref::LlRankInput> ref_in;
    for (const auto& d : inputs[b]) ref_in.push_back(d.in);
    expected[b] = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
    di[b] = upload_inputs(inputs[b][static_cast<std::size_t>(me)], c);
  }
  poison_outputs(buffer);
  LlDispatchResult d0 = buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(true), call);
  LlDispatchResult d1 = buffer.low_latency_dispatch(di[1].x, di[1].topk, c.options(true), call);
  // A third split dispatch before the first is received is refused before any launch.
  EXPECT_THROW(buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(true), call), Error);
  d0.receive();
  d1.receive();
  finish(buffer);
  const GotDispatch got[2] = {download_dispatch(d0), download_dispatch(d1)};
  std::vector<ref::LlRankOutput> routing[2];
  std::vector<std::vector<std::uint16_t>> ys[2];
  DeviceTensor y[2];
  for (int b = 0; b < 2; ++b) {
    expect_dispatch_matches(got[b], expected[b][static_cast<std::size_t>(me)], c, R,
                            "dispatch " + std::to_string(b));
    routing[b] = gather_routing(got[b], c, R);
    for (int r = 0; r < R; ++r)
      ys[b].push_back(
          make_y(YMode::kHash, c, R, r, 60u + b, routing[b][static_cast<std::size_t>(r)], inputs[b]));
    y[b] = upload(ys[b][static_cast<std::size_t>(me)], DType::kBF16,
                  {c.experts_per_rank, R * c.max_tokens, c.hidden});
  }
  LlCombineResult c0 = buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d0.handle,
                                                  {.return_recv_hook = true}, call);
  LlCombineResult c1 = buffer.low_latency_combine(y[1], di[1].topk, di[1].weights, d1.handle,
                                                  {.return_recv_hook = true}, call);
  c0.receive();
  c1.receive();
  finish(buffer);
  expect_combine_matches(download<std::uint16_t>(c0.out), c, R, routing[0], ys[0], inputs[0], "combine 0");
  expect_combine_matches(download<std::uint16_t>(c1.out), c, R, routing[1], ys[1], inputs[1], "combine 1");
  // The same two combines with a zero-copy y (pulled with CUDA IPC): both sends, then both
  // receives. The first one's buffer is not handed out again before its receive (its peers may
  // still read it).
  LlCombineResult z[2];
  const LlHandle* handles[2] = {&d0.handle, &d1.handle};
  for (int b = 0; b < 2; ++b) {
    const Tensor y_zc = buffer.get_next_low_latency_combine_buffer(*handles[b]);
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(y_zc.data, y[b].data(),
                                      ys[b][static_cast<std::size_t>(me)].size() * sizeof(std::uint16_t),
                                      cudaMemcpyDeviceToDevice, env.stream));
    z[b] = buffer.low_latency_combine(y_zc, di[b].topk, di[b].weights, *handles[b],
                                      {.zero_copy = true, .return_recv_hook = true}, call);
  }
  EXPECT_THROW(buffer.get_next_low_latency_combine_buffer(d0.handle), Error);
  // Nor is the first dispatch's memory: a third dispatch would overwrite what its peers still read.
  EXPECT_THROW(buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(false), call), Error);
  z[0].receive();
  z[1].receive();
  finish(buffer);
  expect_combine_matches(download<std::uint16_t>(z[0].out), c, R, routing[0], ys[0], inputs[0],
                         "zero-copy 0");
  expect_combine_matches(download<std::uint16_t>(z[1].out), c, R, routing[1], ys[1], inputs[1],
                         "zero-copy 1");
  // A third dispatch reuses the first one's memory: its handle is refused before any launch.
  LlDispatchResult d2 = buffer.low_latency_dispatch(di[0].x, di[0].topk, c.options(false), call);
  EXPECT_THROW(buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d0.handle, {}, call), Error);
  buffer.low_latency_combine(y[0], di[0].topk, di[0].weights, d2.handle, {}, call);
  finish(buffer);
}

// Dispatch + combine captured in a CUDA graph, replayed with fresh inputs copied into the
// captured buffers before each replay; every replay checked in full.
void run_graph(const LlCase& c, Buffer& buffer, bool hook, int replays) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const CallOptions call{.stream = env.stream};
  const DeviceInputs di = upload_inputs(make_inputs(c, R, 0)[static_cast<std::size_t>(me)], c);
  finish(buffer);
  cudaGraph_t graph = nullptr;
  EPCOMM_CUDA_CHECK(cudaStreamBeginCapture(env.stream, cudaStreamCaptureModeRelaxed));
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(hook), call);
  if (hook) d.receive();
  // BF16: y is recv_x itself (each row echoes its token); FP8: y is the zero-copy buffer, refilled
  // with hashed values before each replay.
  const bool echo = !c.use_fp8;
  const Tensor y = echo ? d.recv_x : buffer.get_next_low_latency_combine_buffer(d.handle);
  LlCombineResult cr = buffer.low_latency_combine(y, di.topk, di.weights, d.handle,
                                                  {.zero_copy = !echo, .return_recv_hook = hook}, call);
  if (hook) cr.receive();
  EPCOMM_CUDA_CHECK(cudaStreamEndCapture(env.stream, &graph));
  cudaGraphExec_t exec = nullptr;
  EPCOMM_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));

  for (int i = 0; i < replays; ++i) {
    SCOPED_TRACE("replay " + std::to_string(i));
    const std::uint64_t salt = 100u + static_cast<std::uint64_t>(i);
    const std::vector<RankData> inputs = make_inputs(c, R, salt);
    std::vector<ref::LlRankInput> ref_in;
    for (const auto& rd : inputs) ref_in.push_back(rd.in);
    const auto expected = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
    refill_inputs(di, inputs[static_cast<std::size_t>(me)], c);
    std::vector<std::vector<std::uint16_t>> ys(static_cast<std::size_t>(R));
    if (!echo) {  // hashed y does not depend on the routing: made before the replay
      for (int r = 0; r < R; ++r)
        ys[static_cast<std::size_t>(r)] = make_y(YMode::kHash, c, R, r, salt, {}, inputs);
      copy_to_device(y.data, ys[static_cast<std::size_t>(me)].data(), y.nbytes());
    }
    poison_outputs(buffer);
    EPCOMM_CUDA_CHECK(cudaGraphLaunch(exec, env.stream));
    finish(buffer, "graph replay");
    const GotDispatch got = download_dispatch(d);
    expect_dispatch_matches(got, expected[static_cast<std::size_t>(me)], c, R, "dispatch");
    const auto routing = gather_routing(got, c, R);
    if (echo)
      for (int r = 0; r < R; ++r)
        ys[static_cast<std::size_t>(r)] =
            make_y(YMode::kEcho, c, R, r, salt, routing[static_cast<std::size_t>(r)], inputs);
    expect_combine_matches(download<std::uint16_t>(cr.out), c, R, routing, ys, inputs, "combine");
    if (::testing::Test::HasFatalFailure()) break;
  }
  EPCOMM_CUDA_CHECK(cudaGraphExecDestroy(exec));
  EPCOMM_CUDA_CHECK(cudaGraphDestroy(graph));
}

// Replays of each captured graph. Across domains the program runs 4 ranks taking turns on one GPU,
// where a replay costs tens of times more: 8 replays still run each staging parity 4 times (the
// device's sequence counter alternates it on every replay, ll_args.hpp).
#if defined(EPCOMM_TEST_LL_MD)
constexpr int kGraphReplays = 8;
#else
constexpr int kGraphReplays = 50;
#endif

TEST_F(Ll, CudaGraphBf16) {
  const LlCase c{.use_fp8 = false, .seed = 50};
  run_graph(c, buffer_for(c), /*hook=*/false, kGraphReplays);
  run_pair(buffer_for(c), c, {.y = YMode::kEcho, .salt = 7});  // eager calls after replays still agree
}
TEST_F(Ll, CudaGraphSplitPhasesFp8ZeroCopy) {
  const LlCase c{.round_scale = true, .use_ue8m0 = true, .seed = 51};
  run_graph(c, buffer_for(c), /*hook=*/true, kGraphReplays);
  run_pair(buffer_for(c), c, {.salt = 7});
}

// A dispatch of `mine` (rank 0's made wrong on purpose) that only the device can refuse: rank 0's
// check_status throws an invalid-argument error of the low-latency dispatch whose message holds
// `part`; a combine of zeros closes the call, and the Buffer then carries on (a checked pair).
void expect_reported_then_recover(Buffer& buffer, const LlCase& c, const RankData& mine, const char* part,
                                  bool rank1_late = false) {
  const GpuEnv& env = gpu_env();
  const DeviceInputs di = upload_inputs(mine, c);
  if (rank1_late && env.rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  LlDispatchResult d = buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  if (env.rank == 0) {
    try {
      buffer.check_status();
      ADD_FAILURE() << "expected a report holding \"" << part << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      EXPECT_NE(e.message().find("low-latency dispatch"), std::string::npos) << e.what();
      EXPECT_NE(e.message().find(part), std::string::npos) << e.what();
    }
  }
  const DeviceTensor y =
      upload(std::vector<std::uint16_t>(
                 static_cast<std::size_t>(c.experts_per_rank * env.world * c.max_tokens * c.hidden), 0),
             DType::kBF16, {c.experts_per_rank, env.world * c.max_tokens, c.hidden});
  buffer.low_latency_combine(y, di.topk, di.weights, d.handle, {}, {.stream = env.stream});
  finish(buffer);
  run_pair(buffer, c, {.salt = 1});
}

// An expert index outside [-1, E) is reported by check_status (only the device sees it); the call
// skips it and the buffer stays usable.
TEST_F(Ll, InvalidExpertIsReported) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.seed = 70};
  std::vector<RankData> inputs = make_inputs(c, env.world, 0);
  RankData& mine = inputs[static_cast<std::size_t>(env.rank)];
  if (env.rank == 0) mine.in.topk_idx[5 * c.num_topk + 2] = c.num_experts(env.world) + 3;
  // Rank 1 calls late, so rank 0's kernel waits (long past a waiter's status check) with the
  // report already in its status word: waiting must go on, or rank 0 withholds its credits and
  // the calls that follow time out.
  expect_reported_then_recover(buffer_for(c), c, mine, "token 5", /*rank1_late=*/true);
}

// A token naming one expert in two slots (twice the selections of a source's T rows of it): the
// list is cut at T, the overflow reported (never written out of bounds), and the Buffer goes on.
TEST_F(Ll, SelectionsBeyondTheRowsOfAnExpertAreReported) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.max_tokens = 16, .hidden = 1024, .seed = 71};
  std::vector<RankData> inputs = make_inputs(c, env.world, 0);
  RankData& mine = inputs[static_cast<std::size_t>(env.rank)];
  if (env.rank == 0)
    for (std::int64_t t = 0; t < c.max_tokens; ++t) {
      mine.in.topk_idx[t * c.num_topk] = 0;
      mine.in.topk_idx[t * c.num_topk + 1] = 0;
    }
  expect_reported_then_recover(buffer_for(c), c, mine, "rows on rank 0, but only 16 fit");
}

// EPCOMM_LL_TRACE (epcomm/ll_trace.hpp): each block stamps a call's phases in their order, and in
// the direct dispatch (CUDA IPC's default) the list blocks stamp their pass between their credits
// and their sends; a checked pair runs on the traced Buffer first.
TEST_F(Ll, TraceStampsEachBlocksPhasesInOrder) {
  const LlCase c{.seed = 41};
  buffer_.reset();  // a Buffer reads EPCOMM_LL_TRACE when it is made (collectively)
  const LowLatencyOptions o = c.buffer_options(gpu_env().world);
  std::optional<Buffer> made;
  {
    const ScopedEnv trace_env("EPCOMM_LL_TRACE", "1");
    made.emplace(gpu_env().bootstrap, ll_buffer_options(o, gpu_env().world), o);
  }
  Buffer& traced = *made;
  run_pair(traced, c);
  run_pair(traced, c, {.salt = 1});
  const LlTrace t = traced.low_latency_trace(LlKernel::kDispatch, /*clear=*/true);
  ASSERT_FALSE(t.empty());
  const int points = static_cast<int>(t.points.size());
  const int recv_entry = t.point("recv-entry"), binned = t.point("list-binned"),
            placed = t.point("list-placed");
  ASSERT_GE(t.point("entry"), 0);
  ASSERT_GE(binned, 0);
  ASSERT_EQ(placed, binned + 1);
  ASSERT_EQ(t.point("credits"), binned - 1);
  ASSERT_EQ(t.point("sent"), placed + 1);
  int calls = 0, list_blocks = 0;
  for (int slot = 0; slot < t.ring; ++slot) {
    const std::uint64_t* call = t.stamps.data() + static_cast<std::ptrdiff_t>(slot) * t.blocks * points;
    if (call[t.point("entry")] == 0) continue;  // a slot no call used
    ++calls;
    for (int b = 0; b < t.blocks; ++b) {
      const std::uint64_t* s = call + static_cast<std::ptrdiff_t>(b) * points;
      EXPECT_NE(s[t.point("exit")], 0u) << "slot " << slot << " block " << b << " never exited";
      if (s[binned] != 0) ++list_blocks;
      std::uint64_t last = 0;
      for (int p = 0; p < points; ++p) {
        if (p == recv_entry || s[p] == 0) continue;  // not a split call; a point of another role
        EXPECT_GE(s[p], last) << "slot " << slot << " block " << b << ": " << t.points[p]
                              << " before an earlier point";
        last = s[p];
      }
      EXPECT_EQ(s[binned] != 0, s[placed] != 0) << "slot " << slot << " block " << b;
    }
  }
  EXPECT_EQ(calls, 2);
#if !defined(EPCOMM_TEST_LL_NVSHMEM) && !defined(EPCOMM_TEST_LL_MD)
  const char* direct = std::getenv("EPCOMM_LL_DIRECT_DISPATCH");
  if (direct == nullptr || std::string(direct) != "0")
    EXPECT_GT(list_blocks, 0) << "no list block stamped its pass";
#endif
}

#if defined(EPCOMM_TEST_LL_NVSHMEM)
// The buffer really runs over NVSHMEM: its workspace is symmetric memory, outside the NVLink
// region (which holds no workspace at all here).
TEST_F(Ll, WorkspaceIsSymmetricMemory) {
  const LlCase c{.seed = 90};
  Buffer& buffer = buffer_for(c);
  const LlState* st = low_latency_state(buffer);
  ASSERT_NE(st->nvshmem, nullptr);
  EXPECT_NE(st->workspace, RegionLayout::data(BufferAccess::impl(buffer).region.get()));
  EXPECT_EQ(buffer.num_nvl_bytes(), 0);
}

// NVSHMEM keeps one state per process: a second such Buffer while one lives is refused on every
// rank before any collective step (so no rank is left waiting), and the first stays usable.
TEST_F(Ll, SecondNvshmemBufferIsRefused) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.seed = 91};
  Buffer& buffer = buffer_for(c);
  const LowLatencyOptions o = c.buffer_options(env.world);
  try {
    Buffer second(env.bootstrap, ll_buffer_options(o, env.world), o);
    ADD_FAILURE() << "a second NVSHMEM buffer was made while one lives";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported) << e.what();
    EXPECT_NE(e.message().find("ll_transport"), std::string::npos) << e.what();
  }
  run_pair(buffer, c);
}
#endif

#if defined(EPCOMM_TEST_LL_MD)
// The Buffer runs the hybrid path: its kernels see every rank, this rank's domain by stores through
// each peer's symmetric workspace (its own included), the other domains through NVSHMEM.
TEST_F(Ll, AcrossDomainsRunsTheHybridPath) {
  const GpuEnv& env = gpu_env();
  const LlCase c{.seed = 92};
  Buffer& buffer = buffer_for(c);
  const LlState* st = low_latency_state(buffer);
  const int G = env.world / ll_test_domains(env.world);
  EXPECT_EQ(buffer.num_domains(), ll_test_domains(env.world));
  EXPECT_EQ(st->path, LlPath::kHybrid);
  ASSERT_NE(st->nvshmem, nullptr);
  EXPECT_NE(st->workspace, RegionLayout::data(BufferAccess::impl(buffer).region.get()));
  EXPECT_EQ(st->view.num_domain_ranks, env.world);
  EXPECT_EQ(st->view.domain_rank, env.rank);
  EXPECT_EQ(st->view.nvl_first, env.rank - env.rank % G);
  EXPECT_EQ(st->view.nvl_ranks, G);
  for (int i = 0; i < G; ++i) EXPECT_NE(st->view.peer_base[i], nullptr) << "domain peer " << i;
  EXPECT_EQ(st->view.peer_base[env.rank % G], st->workspace);
  run_pair(buffer, c);
}

// Only a low-latency Buffer spans domains: a high-throughput one is refused on every rank alike
// (after discovery), even with low_latency_mode set.
TEST_F(Ll, HighThroughputBufferRefusesSeveralDomains) {
  const GpuEnv& env = gpu_env();
  try {
    Buffer ht(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 20, .low_latency_mode = true});
    ADD_FAILURE() << "a high-throughput Buffer was made across " << ll_test_domains(env.world) << " domains";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported) << e.what();
    EXPECT_NE(e.message().find("num_domains: high-throughput mode serves one NVLink domain"), std::string::npos)
        << e.what();
  }
}

// Only the ranks of domain 0 call: each of them gets a timeout naming a rank of another domain,
// and that domain, within the timeout (the peers of its own domain answered).
TEST_F(Ll, PeerInAnotherDomainThatNeverCallsTimesOut) {
  const GpuEnv& env = gpu_env();
  const int G = env.world / ll_test_domains(env.world);
  buffer_.reset();
  const LlCase c{.max_tokens = 8, .hidden = 256, .experts_per_rank = 4, .seed = 81};
  const LowLatencyOptions o = c.buffer_options(env.world);
  {
    Buffer buffer(env.bootstrap, ll_buffer_options(o, env.world, /*timeout_ms=*/2000), o);
    if (env.rank < G) {
      const DeviceInputs di =
          upload_inputs(make_inputs(c, env.world, 0)[static_cast<std::size_t>(env.rank)], c);
      buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
      EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
      try {
        buffer.check_status();
        ADD_FAILURE() << "expected a timeout";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
        EXPECT_NE(e.message().find("low-latency dispatch timed out"), std::string::npos) << e.what();
        EXPECT_NE(e.message().find(" is in NVLink domain "), std::string::npos) << e.what();
        EXPECT_EQ(e.message().find(" is in NVLink domain 0 "), std::string::npos) << e.what();
      }
    }
  }  // every rank meets in the destructor
}
#endif

// A peer that never calls is reported within the timeout, naming the operation, the peer and the
// counter; the process does not hang.
// NOTE: not in the program across domains: a timeout leaves NVSHMEM unusable in the process (the
// ranks skip its collective teardown, abandon_collective_teardown), so one timeout case per
// process, the last: there PeerInAnotherDomainThatNeverCallsTimesOut. A second one would make its
// Buffer while NVSHMEM is still held, and be refused on every rank ("already in use").
#if !defined(EPCOMM_TEST_LL_MD)
TEST_F(Ll, PeerThatNeverArrivesTimesOut) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer that can fail to arrive";
  buffer_.reset();
  const LlCase c{.max_tokens = 8, .hidden = 256, .experts_per_rank = 4, .seed = 80};
  const LowLatencyOptions o = c.buffer_options(env.world);
  {
    Buffer buffer(env.bootstrap, ll_buffer_options(o, env.world, /*timeout_ms=*/2000), o);
    if (env.rank == 0) {
      const DeviceInputs di = upload_inputs(make_inputs(c, env.world, 0)[0], c);
      buffer.low_latency_dispatch(di.x, di.topk, c.options(false), {.stream = env.stream});
      EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
      expect_peer_timeout([&] { buffer.check_status(); }, "low-latency dispatch timed out");
    }
  }  // both ranks meet in the destructor
}
#endif

}  // namespace
}  // namespace epcomm::test
