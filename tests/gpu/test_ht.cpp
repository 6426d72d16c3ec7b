// High-throughput dispatch and combine on the GPUs against the CPU reference, every element:
// payloads, scales, top-k and source indices bit-exactly, combine sums within a BF16 tolerance.
// Outputs come from a poisoning allocator (checks.hpp: NaN for every float type, an impossible
// value for every index type), so rows the kernels forget show up as mismatches. The cases this
// program shares with test_md.cpp are in ht_cases.hpp, the steps of a run in ht_run.hpp.

#include "checks.hpp"

#include "buffer/buffer_impl.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "ht_cases.hpp"
#include "ht_inputs.hpp"
#include "ht_run.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm::test {
namespace {

// Layout, dispatch (zero-copy outputs poisoned by a first call), a cached dispatch and combine of
// case `c`, each against the reference, with every call ordered and waited for as `mode` says.
void run_case(Buffer& buffer, const HtCase& c, const HtMode& mode = {}) {
  const GpuEnv& env = gpu_env();
  const HtExpected expected = ht_expected(c, env.world, /*ranks_per_domain=*/env.world);
  const ref::HtRankInput& in = expected.input(env.rank);

  CallOptions options{.stream = env.stream, .async_finish = mode.async_finish};
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  HtDeviceInputs u = upload_inputs(buffer, c, in, expected.geometry.num_experts, options);
  wait_for(u.layout.event, mode.async_finish);
  u.args.num_worst_tokens = expected.options.num_worst_tokens;
  u.args.zero_copy = mode.zero_copy;
  if (mode.derive_layout) leave_layout_to_dispatch(u.args, expected.geometry.num_experts);
  if (mode.zero_copy) dispatch_and_poison(buffer, u.args, options);
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  const DispatchResult got = buffer.dispatch(u.args, options);
  finish(buffer, got.event, mode.async_finish);
  expect_dispatch_outputs(got, c, in, expected.output(env.rank));
  if (::testing::Test::HasFatalFailure()) return;

  // With zero-copy outputs it rewrites the rows of `got` (checked above).
  if (mode.cached) run_cached_dispatch(buffer, c, env.world, got, mode.zero_copy, options);
  if (!mode.combine) return;
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  // Zero-copy outputs live in the region, which combine overwrites (and refuses as inputs): then
  // it gets a copy of the received weights.
  run_combine(buffer, c, expected, got, mode.zero_copy ? Tensor{} : got.recv_topk_weights.view(), options,
              mode.combine_calls);
}

// One rank's inputs of a plain BF16 dispatch of case `c` on `buffer` (layout included) and the
// arguments that name them; the tensors live as long as this does.
struct PlainDispatch {
  ref::HtRankInput in;
  DeviceTensor x, topk, weights;
  DispatchLayout layout;
  DispatchArgs args;
};
PlainDispatch plain_dispatch(Buffer& buffer, const HtCase& c) {
  const GpuEnv& env = gpu_env();
  PlainDispatch p;
  p.in = make_ht_input(c, env.rank, env.world);
  p.x = upload(p.in.x, DType::kBF16, {p.in.num_tokens, c.hidden});
  p.topk = upload(p.in.topk_idx, DType::kI64, {p.in.num_tokens, p.in.num_topk});
  p.weights = upload(p.in.topk_weights, DType::kF32, {p.in.num_tokens, c.num_topk});
  p.layout = buffer.get_dispatch_layout(p.topk, c.experts_per_rank * env.world, {.stream = env.stream});
  p.args = dispatch_args(p.x, p.topk, p.weights, p.layout);
  return p;
}

BufferOptions ht_buffer_options() {
  return {.num_nvl_bytes = std::int64_t{1} << 29, .allocator = poisoning_allocator()};
}
class Ht : public SharedBufferSuite<ht_buffer_options> {
 protected:
  static void run(const HtCase& c, const HtMode& mode) { run_case(*buffer_, c, mode); }
};

// The cases of ht_cases.hpp, then this program's own, as tests Ht.<name>.
[[maybe_unused]] const bool kCasesRegistered =
    register_cases<Ht>("Ht", shared_ht_cases(), __FILE__, __LINE__) &&
    register_cases<Ht>(
        "Ht",
        {
            {"WorstCaseFp8", {.fp8 = true, .worst_case = true, .seed = 9}},
            {"PreviousEvent", {.seed = 11}, {.async_finish = true, .previous_event = true}},
            // Dispatch given topk_idx alone: layout and notify in one launch (the
            // last case has more experts than that launch takes: layout, then notify).
            {"DerivedLayoutBf16", {.seed = 31}, {.derive_layout = true}},
            {"DerivedLayoutFp8Int32Index", {.fp8 = true, .idx32 = true, .seed = 32}, {.derive_layout = true}},
            {"DerivedLayoutSkewedRouting",
             {.num_tokens = 1024, .skew = true, .seed = 33},
             {.derive_layout = true}},
            {"DerivedLayoutRankWithNoTokens",
             {.num_tokens = 300, .tokens_on_rank1 = 0, .seed = 34},
             {.derive_layout = true}},
            {"DerivedLayoutWorstCaseZeroCopy",
             {.worst_case = true, .seed = 35},
             {.zero_copy = true, .derive_layout = true}},
            {"DerivedLayoutTopkUpTo32",
             {.num_tokens = 256, .num_topk = 32, .experts_per_rank = 64, .seed = 36},
             {.derive_layout = true}},
            {"DerivedLayoutAsyncPreviousEvent",
             {.expert_alignment = 64, .seed = 37},
             {.async_finish = true, .previous_event = true, .derive_layout = true}},
            {"DerivedLayoutPastTheFusedExperts",
             {.num_tokens = 256, .hidden = 2048, .experts_per_rank = 4200, .seed = 38},
             {.derive_layout = true}},
        },
        __FILE__, __LINE__);

class HtHidden : public Ht, public ::testing::WithParamInterface<std::int64_t> {};
TEST_P(HtHidden, Bf16AndFp8) {
  run_case(*buffer_, {.num_tokens = 700, .hidden = GetParam(), .seed = 20});
  run_case(*buffer_, {.num_tokens = 700, .hidden = GetParam(), .fp8 = true, .seed = 21});
}
INSTANTIATE_TEST_SUITE_P(Sizes, HtHidden, ::testing::Values(2048, 7168, 8192));

class HtSms : public Ht, public ::testing::WithParamInterface<int> {};
TEST_P(HtSms, Budget) {
  for (const HtCase& c : budget_cases(sm_budget(GetParam()))) run_case(*buffer_, c);
}
INSTANTIATE_TEST_SUITE_P(Budgets, HtSms, ::testing::Values(2, 8, 24, 0));  // 0: every SM

TEST_F(Ht, BackToBackCalls) {
  for (int i = 0; i < 2; ++i) run_case(*buffer_, {.num_tokens = 200, .seed = 40u + i});
  for (int i = 0; i < 100; ++i)
    run_case(
        *buffer_,
        {.num_tokens = 64, .hidden = 2048, .num_sms = 4 + i % 8, .worst_case = i % 3 == 0, .seed = 100u + i},
        {.cached = i % 5 == 0});
}

// Combines issued back to back with no wait between, the ranks' loads unequal (rank 1 has few
// tokens), so a rank may begin the next call while a peer still reduces the last. Catches (in
// gpu.test_ht_pull1 / _pull2, where a rank counts the rows it stages for the peers in its own
// region): the next call zeroing those counts before a slower peer had read them (that peer then
// timed out: seen with 2 ranks sharing a GPU, 2026-12-05, bbebea6).
TEST_F(Ht, CombineCallsBackToBackWithUnequalLoads) {
  run_case(*buffer_, {.num_tokens = 1024, .tokens_on_rank1 = 32, .seed = 90},
           {.async_finish = true, .cached = false, .combine_calls = 20});
}

TEST_F(Ht, ZeroCopyBf16) {
  run_case(*buffer_, {.seed = 70}, {.zero_copy = true});
}
TEST_F(Ht, ZeroCopyFp8Int32Index) {
  run_case(*buffer_, {.fp8 = true, .idx32 = true, .seed = 71}, {.zero_copy = true});
}
TEST_F(Ht, ZeroCopyWorstCaseFp8) {
  run_case(*buffer_, {.fp8 = true, .worst_case = true, .seed = 72}, {.zero_copy = true});
}
TEST_F(Ht, ZeroCopySkewedSmallBudgetAsync) {
  run_case(*buffer_, {.num_tokens = 1500, .skew = true, .num_sms = 2, .seed = 73},
           {.async_finish = true, .zero_copy = true});
}

// The copy-engine dispatch (EPCOMM_HT_DISPATCH_CE) in the default tier too: the SMs pack, the copy
// engine carries, with the packs queued during the handshake, then with staging sized only once
// the host has the counts (the path of large domains).
// The Buffer's tuning with `dispatch_chunks` (EPCOMM_HT_DISPATCH_CE), its early-staging limit and
// `combine_chunks` (EPCOMM_HT_COMBINE_CE), for one test.
class CopyEngineTuning : public ScopedHtTuning {
 public:
  CopyEngineTuning(Buffer& buffer, int dispatch_chunks, std::int64_t early_staging_bytes,
                   int combine_chunks = 0, int straight = kStraightPeers)
      : ScopedHtTuning(buffer) {
    tuning().dispatch_copy_chunks = dispatch_chunks;
    tuning().dispatch_early_staging_bytes = early_staging_bytes;
    tuning().combine_copy_chunks = combine_chunks;
    tuning().dispatch_straight = straight;
  }
};
TEST_F(Ht, CopyEngineDispatch) {
  const CopyEngineTuning scoped(*buffer_, 3, HtTuning{}.dispatch_early_staging_bytes);
  run_case(*buffer_, {.num_tokens = 700, .skew = true, .seed = 80});
  run_case(*buffer_, {.fp8 = true, .idx32 = true, .seed = 81}, {.zero_copy = true});
  run_case(*buffer_, {.num_tokens = 300, .num_sms = 2, .seed = 82}, {.async_finish = true});
}
// The whole GPU as the budget, with rows for every receiving block (one chunk of 16 channels per
// SM, 3 tokens each): the receivers spin while the copy stream still has work (blocks_beside_copies).
TEST_F(Ht, CopyEngineDispatchOnEverySm) {
  int sms = 0;
  EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, gpu_env().device));
  const CopyEngineTuning scoped(*buffer_, 4, HtTuning{}.dispatch_early_staging_bytes);
  run_case(*buffer_, {.num_tokens = 3 * kHtWarpsPerBlock * sms, .hidden = 2048, .num_sms = sms, .seed = 85},
           {.cached = false});
}
// Combine pushed by the copy engine (EPCOMM_HT_COMBINE_CE): after SM-store and copy-engine
// dispatches; skewed routing with a rank of few tokens, no top-k, one chunk, and a worst-case
// dispatch (no host counts: the SMs move rows there).
TEST_F(Ht, CopyEnginePushCombine) {
  const std::int64_t early = HtTuning{}.dispatch_early_staging_bytes;
  {
    const CopyEngineTuning scoped(*buffer_, 0, early, 3);
    run_case(*buffer_, {.num_tokens = 900, .tokens_on_rank1 = 37, .skew = true, .seed = 86});
    run_case(*buffer_, {.hidden = 2048, .with_topk = false, .seed = 87});
    run_case(*buffer_, {.num_tokens = 300, .fp8 = true, .worst_case = true, .seed = 88});
  }
  {
    const CopyEngineTuning scoped(*buffer_, 4, early, 1);
    run_case(*buffer_, {.num_tokens = 700, .num_sms = 8, .seed = 89}, {.async_finish = true});
  }
}
// Which of this rank's rows of case `c` the copy engine takes straight from x (checks.hpp).
StraightExpected straight_expected_of(const HtCase& c) {
  const GpuEnv& env = gpu_env();
  const ref::HtRankInput in = make_ht_input(c, env.rank, env.world);
  const ref::Geometry geometry{env.world, c.experts_per_rank * env.world, env.world};
  const ref::Layout l = ref::get_dispatch_layout(geometry, in.topk_idx, in.num_tokens, in.num_topk);
  return straight_expected(l.num_tokens_per_rank, in.num_tokens, env.rank);
}

// Straight copies (EPCOMM_HT_DISPATCH_STRAIGHT) and packed rows. With 32 experts a token, a token
// misses a given rank of up to 4 with probability ~3e-4 (~0.014 at 8 ranks), so up to 4 ranks every
// rank gets all tokens but token 3 (which goes nowhere) and maybe another: at most
// kMaxStraightHoles. Skewed routing keeps ~30% of each rank's tokens off every rank but 0, so rank
// 0 is straight for its peers and the others are packed (one rank has both kinds of peer from 3
// ranks on); dense routing (zero-copy outputs, FP8, staging sized after the counts) makes peers
// straight as the reference layout says, which the counts of queued straight copies check. First
// with the own rows copied straight too (to fresh outputs in the first case, into the region in the
// second), then the peers' only, then none.
// Catches (issue 18, item 6): wrong straight-copy decisions at any rank count (the expectation
// came from "up to 4 ranks" and was skipped silently above).
TEST_F(Ht, CopyEngineDispatchStraightOrPacked) {
  const std::uint64_t& queued = BufferAccess::impl(*buffer_).straight_copies_queued;
  const std::uint64_t& own_queued = BufferAccess::impl(*buffer_).own_straight_copies_queued;
  for (const int straight : {kStraightAll, kStraightPeers, 0}) {
    {
      const CopyEngineTuning scoped(*buffer_, 4, HtTuning{}.dispatch_early_staging_bytes, 0, straight);
      run_case(*buffer_, {.num_tokens = 1000, .num_topk = 32, .skew = true, .seed = 90u + straight},
               {.cached = false});
    }
    const CopyEngineTuning scoped(*buffer_, 3, /*early_staging_bytes=*/0, 0, straight);
    const std::uint64_t before = queued, own_before = own_queued;
    const HtCase dense{.num_tokens = 2048, .num_topk = 32, .fp8 = true, .seed = 93u + straight};
    const StraightExpected expect = straight_expected_of(dense);
    run_case(*buffer_, dense, {.cached = false, .zero_copy = true});
    if (straight == kStraightAll && expect.own)
      EXPECT_GT(own_queued, own_before) << "the own rows qualify, but none was copied straight";
    else
      EXPECT_EQ(own_queued, own_before)
          << "own rows copied straight with EPCOMM_HT_DISPATCH_STRAIGHT=" << straight
          << (expect.own ? "" : " though they do not qualify");
    if (straight != 0 && expect.peer)
      EXPECT_GT(queued, before) << "a peer qualifies, but no straight copy was queued "
                                << "(EPCOMM_HT_DISPATCH_STRAIGHT=" << straight << ")";
    else
      EXPECT_EQ(queued, before) << "straight copies with EPCOMM_HT_DISPATCH_STRAIGHT=" << straight
                                << (expect.peer ? "" : " though no peer qualifies");
  }
}
// The own rows copied straight to fresh outputs (32 experts a token: every rank up to 4 gets nearly
// every token), then a cached dispatch from that handle (SM stores for the own rows), and on a 2-SM
// budget with the call's event. Catches (issue 18, item 6): above 4 ranks too, the own rows copied
// straight exactly when the reference layout says they qualify.
TEST_F(Ht, CopyEngineDispatchOwnRowsStraight) {
  const CopyEngineTuning scoped(*buffer_, 4, HtTuning{}.dispatch_early_staging_bytes, 0, kStraightAll);
  const std::uint64_t& own_queued = BufferAccess::impl(*buffer_).own_straight_copies_queued;
  const std::uint64_t before = own_queued;
  const HtCase dense{.num_tokens = 1500, .num_topk = 32, .seed = 96};
  const bool own_straight = straight_expected_of(dense).own;
  run_case(*buffer_, dense);
  if (own_straight)
    EXPECT_GT(own_queued, before) << "the own rows qualify, but none was copied straight";
  else
    EXPECT_EQ(own_queued, before) << "own rows copied straight though they do not qualify";
  run_case(*buffer_, {.num_tokens = 700, .num_topk = 32, .num_sms = 2, .seed = 97}, {.async_finish = true});
}
TEST_F(Ht, CopyEngineDispatchStagedAfterTheCounts) {
  const CopyEngineTuning scoped(*buffer_, 2, /*early_staging_bytes=*/0);
  run_case(*buffer_, {.seed = 83});
  run_case(*buffer_, {.fp8 = true, .seed = 84}, {.zero_copy = true});
}

TEST_F(Ht, ZeroCopyOutputsAreRefusedAsCombineInputs) {
  const GpuEnv& env = gpu_env();
  const HtCase c{.num_tokens = 256, .seed = 74};
  PlainDispatch p = plain_dispatch(*buffer_, c);
  p.args.zero_copy = true;
  const DispatchResult got = buffer_->dispatch(p.args, {.stream = env.stream});
  CombineArgs cargs;
  cargs.x = got.recv_x;  // in the region: combine would overwrite it while reading it
  cargs.handle = &got.handle;
  try {
    buffer_->combine(cargs, {.stream = env.stream});
    ADD_FAILURE() << "expected an epcomm::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("x: lies in this Buffer's NVLink region"), std::string::npos) << e.what();
  }
  // So would a (cached) dispatch reading them.
  DispatchArgs again;
  again.x = Tensor::contiguous(got.recv_x.data(), DType::kBF16, {p.in.num_tokens, c.hidden});
  again.handle = &got.handle;
  try {
    buffer_->dispatch(again, {.stream = env.stream});
    ADD_FAILURE() << "expected an epcomm::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("x: lies in this Buffer's NVLink region"), std::string::npos) << e.what();
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer_->check_status();
}

TEST_F(Ht, FullSizeDsv3) {
  run_case(*buffer_, {.num_tokens = 4096, .seed = 50}, {.cached = false});
  run_case(*buffer_, {.num_tokens = 4096, .fp8 = true, .seed = 51}, {.cached = false, .combine = false});
}

// Long token runs in notify's scan: 33,797 tokens give each of its warps 34 rows of 32 tokens
// (nine batches of loads; the other cases one), the last row partial, with channel starts inside
// and between the rows.
TEST_F(Ht, NotifyScansLongTokenRuns) {
  run_case(*buffer_, {.num_tokens = 33 * 1024 + 5, .hidden = 2048, .num_topk = 2, .seed = 52},
           {.cached = false, .combine = false});
}

// The fused launch's scratch counts start every call at zero (notify clears them): calls of
// different routings back to back, every one checked; a long run of tokens takes many blocks (its
// scan looks back over more tickets than a warp has lanes), and the short call after it finds the
// long one's words on the scan's board (another call's tag).
TEST_F(Ht, DerivedLayoutCallsBackToBack) {
  for (std::uint64_t seed = 40; seed < 43; ++seed)
    run_case(*buffer_, {.num_tokens = 200 + 300 * static_cast<std::int64_t>(seed - 40), .seed = seed},
             {.cached = false, .combine = false, .derive_layout = true});
  run_case(*buffer_, {.num_tokens = 33 * 1024 + 5, .hidden = 2048, .num_topk = 2, .seed = 43},
           {.cached = false, .combine = false, .derive_layout = true});
  run_case(*buffer_, {.num_tokens = 300, .seed = 44},
           {.cached = false, .combine = false, .derive_layout = true});
}

TEST_F(Ht, RegionTooSmallIsAnErrorBeforeLaunch) {
  const GpuEnv& env = gpu_env();
  Buffer small(env.bootstrap, BufferOptions{.num_nvl_bytes = 1 << 20});
  PlainDispatch p = plain_dispatch(small, {.num_tokens = 512, .seed = 60});
  DispatchArgs& args = p.args;
  try {
    small.dispatch(args, {.stream = env.stream});
    ADD_FAILURE() << "expected an error: 1 MiB cannot hold the rows";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("num_nvl_bytes"), std::string::npos) << e.what();
  }
  // Worst-case mode is refused on the host before anything is launched.
  args.num_worst_tokens = 1024;
  EXPECT_THROW(small.dispatch(args, {.stream = env.stream}), Error);
  small.check_status();
}

// Zero-copy launches the dispatch kernel before the host knows the counts: the kernel stops on its
// own (every rank alike), the host raises the same error, and the buffer stays usable.
TEST_F(Ht, RegionTooSmallWithZeroCopyLeavesTheBufferUsable) {
  const GpuEnv& env = gpu_env();
  Buffer small(env.bootstrap, BufferOptions{.num_nvl_bytes = 1 << 20});
  PlainDispatch p = plain_dispatch(small, {.num_tokens = 512, .seed = 61});
  p.args.zero_copy = true;
  try {
    small.dispatch(p.args, {.stream = env.stream});
    ADD_FAILURE() << "expected an error: 1 MiB cannot hold the rows";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("num_nvl_bytes"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(small.check_status());
  run_case(small, {.num_tokens = 8, .hidden = 2048, .seed = 62}, {.cached = false, .zero_copy = true});
}

// Copy-engine dispatch in a region sized for 64 tokens of hidden 2048 per rank. Rows of hidden
// 8192 do not fit: a fresh dispatch is refused after the handshake (its packs, queued before it,
// stop in their guard and still count every chunk packed), and the next one runs (its copies wait
// for its own packs' counts, not for ones left behind). A cached dispatch of the same handle with
// wider rows is refused before any launch (the copy engine would copy past the region).
TEST_F(Ht, CopyEngineRegionTooSmallLeavesTheBufferUsable) {
  const GpuEnv& env = gpu_env();
  constexpr std::int64_t kTokens = 64;
  Buffer small(env.bootstrap, BufferOptions{.num_nvl_bytes = kTokens * env.world * 4400 + (64 << 10)});
  const CopyEngineTuning scoped(small, 2, HtTuning{}.dispatch_early_staging_bytes);
  auto expect_too_small = [&](PlainDispatch& p, const char* what) {
    try {
      small.dispatch(p.args, {.stream = env.stream});
      ADD_FAILURE() << "expected an error: rows of hidden 8192 do not fit";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      EXPECT_NE(e.message().find(what), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(small.check_status());
  };
  PlainDispatch wide = plain_dispatch(small, {.num_tokens = kTokens, .hidden = 8192, .seed = 90});
  expect_too_small(wide, "too small for this dispatch:");
  run_case(small, {.num_tokens = kTokens, .hidden = 2048, .seed = 91});

  PlainDispatch narrow = plain_dispatch(small, {.num_tokens = kTokens, .hidden = 2048, .seed = 92});
  const DispatchResult first = small.dispatch(narrow.args, {.stream = env.stream});
  PlainDispatch cached = plain_dispatch(small, {.num_tokens = kTokens, .hidden = 8192, .seed = 92});
  cached.args.handle = &first.handle;
  expect_too_small(cached, "cached dispatch");
  run_case(small, {.num_tokens = 8, .hidden = 2048, .seed = 93});
}

// A peer that never calls dispatch: this rank's count exchange times out, and the dispatch call
// itself throws the device's report (naming the operation and the rank waited for), not a hang.
void expect_dispatch_without_peer_to_time_out(bool zero_copy, std::uint64_t seed) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer that can fail to arrive";
  {
    Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .timeout_ms = 2000});
    if (env.rank == 0) {
      PlainDispatch p = plain_dispatch(buffer, {.num_tokens = 64, .hidden = 2048, .seed = seed});
      p.args.zero_copy = zero_copy;
      expect_peer_timeout([&] { buffer.dispatch(p.args, {.stream = env.stream}); }, "timed out");
      EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
    }
  }  // both ranks meet in the destructor
}
TEST_F(Ht, PeerThatSkipsTheDispatchTimesOut) {
  expect_dispatch_without_peer_to_time_out(/*zero_copy=*/false, 63);
}
// With zero-copy outputs the kernel is launched before the host sees notify fail (as are the copy
// engine's packs, EPCOMM_HT_DISPATCH_CE, in the case above): notify leaves counts no region holds,
// so that kernel stops in its guard instead of forwarding rows by counts never exchanged.
TEST_F(Ht, PeerThatSkipsAZeroCopyDispatchTimesOut) {
  expect_dispatch_without_peer_to_time_out(/*zero_copy=*/true, 64);
}

// A peer that never calls combine: this rank's combine times out in its opening barrier, and the
// next check_status() throws the device's report naming combine and the rank waited for.
TEST_F(Ht, PeerThatSkipsTheCombineTimesOut) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "needs a peer that can fail to arrive";
  {
    Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 26, .timeout_ms = 2000});
    PlainDispatch p = plain_dispatch(buffer, {.num_tokens = 64, .hidden = 2048, .seed = 64});
    const DispatchResult r = buffer.dispatch(p.args, {.stream = env.stream});
    if (env.rank == 0) {
      CombineArgs c;
      c.x = r.recv_x;
      c.topk_weights = r.recv_topk_weights;
      c.handle = &r.handle;
      buffer.combine(c, {.stream = env.stream});
      EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
      expect_peer_timeout([&] { buffer.check_status(); }, "combine timed out");
    }
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  }  // both ranks meet in the destructor
}

}  // namespace
}  // namespace epcomm::test
