// High-throughput dispatch and combine on the GPUs against the CPU reference, every element:
// payloads, scales, top-k and source indices bit-exactly, combine sums within a BF16 tolerance.
// Outputs come from a poisoning allocator (checks.hpp: NaN for every float type, an impossible
// value for every index type), so rows the kernels forget show up as mismatches.

#include "checks.hpp"

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "buffer/buffer_impl.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm::test {
namespace {

struct Mode {
  bool async_finish = false;    // wait on the returned event
  bool previous_event = false;  // order after an event instead of the stream
  bool cached = true;           // also run a cached dispatch with new payloads
  bool combine = true;
  bool zero_copy = false;  // dispatch outputs are views of the region (DispatchArgs::zero_copy)
};

// Poisons the memory a view covers (zero-copy outputs live in the region, which no allocator
// poisons). Catches (issue 18, item 3): the old 0xff bytes read -1 as int32/int64, the expected
// value of every non-local top-k slot and padding row, so unwritten -1s passed.
void poison(const DeviceTensor& t) {
  if (t.defined() && t.numel() > 0) fill_poison(t.data(), t.view().nbytes(), gpu_env().stream);
}

template <typename T>
void expect_equal_prefix(const std::vector<T>& got, const std::vector<T>& want, std::size_t count,
                         const char* what) {
  ASSERT_GE(got.size(), count) << what;
  ASSERT_GE(want.size(), count) << what;
  const Mismatches m = bitwise_mismatches(got, want, count);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << count << " elements differ, first at "
                         << m.first;
}

// Catches (issue 18, item 2): with NaN poison and a NaN-aware compare, a combine that never writes
// a token routed nowhere (expected exactly 0) fails; the old 0xab poison read -1.2e-12, inside the
// tolerance, and NaN slipped through the old weights compare.
void expect_bf16_close(const std::vector<std::uint16_t>& got, const std::vector<std::uint16_t>& want,
                       const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Mismatches m = bf16_off(got, want, kCombineXRel, kCombineXAbs);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << got.size() << " values off, first at "
                         << m.first << " (got " << (m.count ? ref::bf16_to_float(got[m.first]) : 0.0f)
                         << ", want " << (m.count ? ref::bf16_to_float(want[m.first]) : 0.0f) << ")";
}

void expect_f32_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Mismatches m = f32_off(got, want, kCombineWeightRel, kCombineWeightAbs);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << got.size() << " values off, first at "
                         << m.first << " (got " << (m.count ? got[m.first] : 0.0f) << ", want "
                         << (m.count ? want[m.first] : 0.0f) << ")";
}

DeviceTensor upload_x(const ref::HtRankInput& in, bool fp8, std::int64_t hidden) {
  return upload(in.x, fp8 ? DType::kFP8E4M3 : DType::kBF16, {in.num_tokens, hidden});
}

DeviceTensor upload_scales(const ref::HtRankInput& in, Tensor* view) {
  DeviceTensor t = upload(in.scales, DType::kF32, {static_cast<std::int64_t>(in.scales.size())});
  *view = Tensor::strided(t.data(), DType::kF32, {in.num_tokens, in.num_scales},
                          {in.scale_stride_token, in.scale_stride_block});
  return t;
}

DeviceTensor upload_topk(const ref::HtRankInput& in, bool idx32) {
  if (!idx32) return upload(in.topk_idx, DType::kI64, {in.num_tokens, in.num_topk});
  std::vector<std::int32_t> narrow(in.topk_idx.begin(), in.topk_idx.end());
  return upload(narrow, DType::kI32, {in.num_tokens, in.num_topk});
}

std::vector<std::int64_t> download_topk(const DeviceTensor& t, bool idx32) {
  if (!idx32) return download<std::int64_t>(t);
  const auto narrow = download<std::int32_t>(t);
  return {narrow.begin(), narrow.end()};
}

// Waits for a result the way the mode says.
void wait_for(const EventHandle& event, const Mode& mode) {
  if (mode.async_finish) {
    ASSERT_TRUE(event.valid());
    event.wait(gpu_env().stream);
  } else {
    EXPECT_FALSE(event.valid());
  }
}

void run_case(Buffer& buffer, const HtCase& c, const Mode& mode = {}) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const ref::Geometry geometry{R, c.experts_per_rank * R, R};
  std::vector<ref::HtRankInput> inputs;
  for (int r = 0; r < R; ++r) inputs.push_back(make_ht_input(c, r, R));
  ref::HtDispatchOptions ref_options;
  ref_options.expert_alignment = c.expert_alignment;
  ref_options.with_topk = c.with_topk;
  std::int64_t max_tokens = 0;
  for (const auto& in : inputs) max_tokens = std::max(max_tokens, in.num_tokens);
  ref_options.num_worst_tokens = c.worst_case ? max_tokens * R : 0;
  const std::vector<ref::HtRankOutput> expected = ref::ht_dispatch(geometry, inputs, ref_options);
  const ref::HtRankInput& in = inputs[static_cast<std::size_t>(me)];
  const ref::HtRankOutput& want = expected[static_cast<std::size_t>(me)];

  // Inputs on the device.
  DeviceTensor x = upload_x(in, c.fp8, c.hidden);
  Tensor scales_view;
  DeviceTensor scales;
  if (c.fp8) scales = upload_scales(in, &scales_view);
  DeviceTensor topk = upload_topk(in, c.idx32);
  DeviceTensor weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});

  CallOptions options{.stream = env.stream, .async_finish = mode.async_finish};
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  const DispatchLayout layout = buffer.get_dispatch_layout(topk, geometry.num_experts, options);
  wait_for(layout.event, mode);
  DispatchArgs args;
  args.x = x;
  args.x_scales = scales_view;
  if (c.with_topk) {
    args.topk_idx = topk;
    args.topk_weights = weights;
  }
  args.num_tokens_per_rank = layout.num_tokens_per_rank;
  args.is_token_in_rank = layout.is_token_in_rank;
  args.num_tokens_per_expert = layout.num_tokens_per_expert;
  args.expert_alignment = c.expert_alignment;
  args.num_worst_tokens = ref_options.num_worst_tokens;
  args.config.num_sms = c.num_sms;
  args.zero_copy = mode.zero_copy;
  if (mode.zero_copy) {
    // The region is not poisoned by the allocator: a first call names the rows the outputs will
    // be, they are poisoned, and the measured call must rewrite every one of them.
    DispatchResult first = buffer.dispatch(args, options);
    wait_for(first.event, mode);
    for (const DeviceTensor* t : std::initializer_list<const DeviceTensor*>{&first.recv_x, &first.recv_x_scales, &first.recv_topk_idx,
                                  &first.recv_topk_weights, &handle_state(first.handle).recv_src_idx})
      poison(*t);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  }
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  DispatchResult got = buffer.dispatch(args, options);
  wait_for(got.event, mode);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();

  // Dispatch outputs, every element.
  const auto n = static_cast<std::size_t>(want.num_recv_tokens);
  ASSERT_EQ(got.handle.num_rows(), want.num_rows);
  ASSERT_EQ(got.recv_x.size(0), want.num_rows);
  expect_equal_prefix(download<std::uint8_t>(got.recv_x), want.recv_x,
                      n * static_cast<std::size_t>(in.row_bytes), "recv_x");
  expect_equal_prefix(download<std::int32_t>(handle_state(got.handle).recv_src_idx), want.route.src_token, n,
                      "recv_src_idx");
  if (c.fp8)
    expect_equal_prefix(download<float>(got.recv_x_scales), want.recv_scales,
                        n * static_cast<std::size_t>(in.num_scales), "recv_x_scales");
  if (c.with_topk) {
    const std::size_t rows_k = static_cast<std::size_t>(want.num_rows) * static_cast<std::size_t>(c.num_topk);
    expect_equal_prefix(download_topk(got.recv_topk_idx, c.idx32), want.recv_topk_idx, rows_k,
                        "recv_topk_idx");
    expect_equal_prefix(download<float>(got.recv_topk_weights), want.recv_topk_weights, rows_k,
                        "recv_topk_weights");
  }
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_tokens_per_expert), want.num_recv_tokens_per_expert);
  if (!c.worst_case) {
    EXPECT_EQ(got.handle.num_recv_tokens(), want.num_recv_tokens);
    EXPECT_EQ(std::vector<std::int32_t>(got.num_recv_tokens_per_expert.begin(),
                                        got.num_recv_tokens_per_expert.end()),
              want.num_recv_tokens_per_expert);
  }
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_dev)[0], want.num_recv_tokens);

  if (mode.cached) {
    // Same routes, new payloads, no layout and no host wait.
    std::vector<ref::HtRankInput> inputs2;
    for (int r = 0; r < R; ++r) inputs2.push_back(make_ht_input(c, r, R, /*salt=*/1));
    std::vector<ref::HtRoute> routes;
    for (const auto& e : expected) routes.push_back(e.route);
    const auto want2 = ref::ht_dispatch_cached(routes, inputs2);
    DeviceTensor x2 = upload_x(inputs2[static_cast<std::size_t>(me)], c.fp8, c.hidden);
    Tensor scales2_view;
    DeviceTensor scales2;
    if (c.fp8) scales2 = upload_scales(inputs2[static_cast<std::size_t>(me)], &scales2_view);
    DispatchArgs cached;
    cached.x = x2;
    cached.x_scales = scales2_view;
    cached.handle = &got.handle;
    cached.config.num_sms = c.num_sms;
    cached.zero_copy = mode.zero_copy;  // then it rewrites the rows of `got` (checked above)
    DispatchResult again = buffer.dispatch(cached, options);
    wait_for(again.event, mode);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
    buffer.check_status();
    expect_equal_prefix(download<std::uint8_t>(again.recv_x), want2[static_cast<std::size_t>(me)],
                        n * static_cast<std::size_t>(in.row_bytes), "cached recv_x");
    // Catches (issue 18, item 9): a cached FP8 dispatch that leaves its new scales unsent (the
    // outputs stay poisoned, or keep the first call's scales in zero-copy mode). The routes do not
    // depend on the salt, so the full reference of the new inputs gives the cached scales.
    if (c.fp8)
      expect_equal_prefix(
          download<float>(again.recv_x_scales),
          ref::ht_dispatch(geometry, inputs2, ref_options)[static_cast<std::size_t>(me)].recv_scales,
          n * static_cast<std::size_t>(in.num_scales), "cached recv_x_scales");
  }

  if (!mode.combine) return;
  // Combine random expert outputs (padding rows too: they must be ignored) with biases and the
  // received weights.
  std::vector<ref::HtCombineRankInput> cin(static_cast<std::size_t>(R));
  std::vector<ref::HtRoute> routes;
  std::vector<std::int64_t> num_tokens;
  for (int r = 0; r < R; ++r) {
    const auto& e = expected[static_cast<std::size_t>(r)];
    auto& ci = cin[static_cast<std::size_t>(r)];
    ci.x = random_bf16(seed_for(c.seed * 31 + 5, r), static_cast<std::size_t>(e.num_rows * c.hidden));
    if (c.with_topk) ci.topk_weights = e.recv_topk_weights;
    if (c.biases) {
      ci.bias0 = random_bf16(seed_for(c.seed * 31 + 6, r),
                             static_cast<std::size_t>(inputs[r].num_tokens * c.hidden));
      ci.bias1 = random_bf16(seed_for(c.seed * 31 + 7, r),
                             static_cast<std::size_t>(inputs[r].num_tokens * c.hidden));
    }
    routes.push_back(e.route);
    num_tokens.push_back(inputs[static_cast<std::size_t>(r)].num_tokens);
  }
  const auto want_c = ref::ht_combine(c.hidden, c.with_topk ? c.num_topk : 0, num_tokens, routes, cin);
  const auto& mine = cin[static_cast<std::size_t>(me)];
  DeviceTensor y = upload(mine.x, DType::kBF16, {want.num_rows, c.hidden});
  DeviceTensor b0, b1;
  CombineArgs cargs;
  cargs.x = y;
  // Zero-copy outputs live in the region, which combine overwrites (and refuses as inputs).
  DeviceTensor weights_copy;
  if (c.with_topk && mode.zero_copy)
    weights_copy = upload(want.recv_topk_weights, DType::kF32, {want.num_rows, c.num_topk});
  if (c.with_topk) cargs.topk_weights = mode.zero_copy ? weights_copy : got.recv_topk_weights;
  if (c.biases) {
    b0 = upload(mine.bias0, DType::kBF16, {in.num_tokens, c.hidden});
    b1 = upload(mine.bias1, DType::kBF16, {in.num_tokens, c.hidden});
    cargs.bias0 = b0;
    cargs.bias1 = b1;
  }
  cargs.handle = &got.handle;
  cargs.config.num_sms = c.num_sms;
  if (mode.previous_event) options.previous_event = EventHandle::record(env.stream);
  const CombineResult combined = buffer.combine(cargs, options);
  wait_for(combined.event, mode);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
  expect_bf16_close(download<std::uint16_t>(combined.x), want_c[static_cast<std::size_t>(me)].out,
                    "combined x");
  if (c.with_topk) {
    expect_f32_close(download<float>(combined.topk_weights),
                     want_c[static_cast<std::size_t>(me)].topk_weights, "combined topk_weights");
  }
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
  p.x = upload_x(p.in, false, c.hidden);
  p.topk = upload_topk(p.in, false);
  p.weights = upload(p.in.topk_weights, DType::kF32, {p.in.num_tokens, c.num_topk});
  p.layout = buffer.get_dispatch_layout(p.topk, c.experts_per_rank * env.world, {.stream = env.stream});
  p.args = dispatch_args(p.x, p.topk, p.weights, p.layout);
  return p;
}

class Ht : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    buffer_ = new Buffer(gpu_env().bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 29,
                                                            .allocator = poisoning_allocator()});
  }
  static void TearDownTestSuite() {
    delete buffer_;
    buffer_ = nullptr;
  }
  static Buffer* buffer_;
};
Buffer* Ht::buffer_ = nullptr;

TEST_F(Ht, Bf16) {
  run_case(*buffer_, {.seed = 1});
}
TEST_F(Ht, Fp8ColumnMajorScales) {
  run_case(*buffer_, {.fp8 = true, .seed = 2});
}
TEST_F(Ht, Fp8RowMajorScalesInt32Index) {
  run_case(*buffer_, {.fp8 = true, .idx32 = true, .col_major_scales = false, .seed = 3});
}
TEST_F(Ht, WithoutTopk) {
  run_case(*buffer_, {.with_topk = false, .seed = 4});
}
TEST_F(Ht, SkewedRoutingWithEmptySlots) {
  run_case(*buffer_, {.num_tokens = 1024, .skew = true, .seed = 5});
}
TEST_F(Ht, RankWithNoTokens) {
  run_case(*buffer_, {.num_tokens = 300, .tokens_on_rank1 = 0, .seed = 6});
}
TEST_F(Ht, ExpertAlignment) {
  run_case(*buffer_, {.expert_alignment = 128, .seed = 7});
}
TEST_F(Ht, WorstCaseBf16) {
  run_case(*buffer_, {.worst_case = true, .seed = 8});
}
TEST_F(Ht, WorstCaseFp8) {
  run_case(*buffer_, {.fp8 = true, .worst_case = true, .seed = 9});
}
TEST_F(Ht, AsyncFinish) {
  run_case(*buffer_, {.seed = 10}, {.async_finish = true});
}
TEST_F(Ht, PreviousEvent) {
  run_case(*buffer_, {.seed = 11}, {.async_finish = true, .previous_event = true});
}
TEST_F(Ht, NoBiases) {
  run_case(*buffer_, {.biases = false, .seed = 12});
}
TEST_F(Ht, TopkUpTo32) {
  run_case(*buffer_, {.num_tokens = 256, .num_topk = 32, .experts_per_rank = 64, .seed = 13});
}

class HtHidden : public Ht, public ::testing::WithParamInterface<std::int64_t> {};
TEST_P(HtHidden, Bf16AndFp8) {
  run_case(*buffer_, {.num_tokens = 700, .hidden = GetParam(), .seed = 20});
  run_case(*buffer_, {.num_tokens = 700, .hidden = GetParam(), .fp8 = true, .seed = 21});
}
INSTANTIATE_TEST_SUITE_P(Sizes, HtHidden, ::testing::Values(2048, 7168, 8192));

class HtSms : public Ht, public ::testing::WithParamInterface<int> {};
TEST_P(HtSms, Budget) {
  int sms = GetParam();
  if (sms == 0)
    EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, gpu_env().device));
  run_case(*buffer_, {.num_tokens = 1500, .skew = true, .num_sms = sms, .seed = 30});
  run_case(*buffer_, {.num_tokens = 1500, .fp8 = true, .num_sms = sms, .worst_case = true, .seed = 31});
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
