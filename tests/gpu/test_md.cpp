// Multi-domain dispatch and combine (docs/multi_domain.md) on the GPUs against the CPU reference,
// every element of every row (combine within a BF16 tolerance): rows cross domains through NVSHMEM
// and are forwarded over NVLink to their final single-domain place, so the reference is the
// oracle unchanged. Run with ranks sharing a GPU and EPCOMM_RANKS_PER_DOMAIN=G (2 ranks as 2 x 1,
// 4 as 2 x 2 and 4 x 1, 8 as 2 x 4 and 4 x 2); a program whose ranks form one domain fails (it
// would test nothing of this mode). Outputs come from a poisoning allocator, so rows the kernels
// forget show up as mismatches.
#include <chrono>
#include <cstdlib>
#include <string>

#include "checks.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "epcomm/multi_domain.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "intranode/dispatch_handle.hpp"

namespace epcomm::test {
namespace {

constexpr std::int64_t kNvlBytes = std::int64_t{1} << 29;

struct Mode {
  bool cached = true;      // also a cached dispatch with new payloads
  bool combine = true;     // then combine the dispatch's rows back (biases and weights as the case says)
  bool zero_copy = false;  // outputs are views of the region
  bool async_finish = false;
};

template <typename T>
void expect_rows(const std::vector<T>& got, const std::vector<T>& want, std::size_t count, const char* what) {
  ASSERT_GE(got.size(), count) << what;
  ASSERT_GE(want.size(), count) << what;
  const Mismatches m = bitwise_mismatches(got, want, count);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << count << " elements differ, first at "
                         << m.first;
}

// The inputs of rank `me` for case `c` on the device, and the dispatch arguments naming them.
struct Inputs {
  DeviceTensor x, scales, topk, weights;
  Tensor scales_view;
  DispatchLayout layout;
  DispatchArgs args;
};
Inputs upload_inputs(Buffer& buffer, const HtCase& c, const ref::HtRankInput& in, int num_experts,
                     const CallOptions& options) {
  Inputs u;
  u.x = upload(in.x, c.fp8 ? DType::kFP8E4M3 : DType::kBF16, {in.num_tokens, c.hidden});
  if (c.fp8) {
    u.scales = upload(in.scales, DType::kF32, {static_cast<std::int64_t>(in.scales.size())});
    u.scales_view = Tensor::strided(u.scales.data(), DType::kF32, {in.num_tokens, in.num_scales},
                                    {in.scale_stride_token, in.scale_stride_block});
  }
  if (c.idx32) {
    u.topk = upload(std::vector<std::int32_t>(in.topk_idx.begin(), in.topk_idx.end()), DType::kI32,
                    {in.num_tokens, in.num_topk});
  } else {
    u.topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, in.num_topk});
  }
  u.weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});
  u.layout = buffer.get_dispatch_layout(u.topk, num_experts, {.stream = options.stream});
  u.args.x = u.x;
  u.args.x_scales = u.scales_view;
  if (c.with_topk) {
    u.args.topk_idx = u.topk;
    u.args.topk_weights = u.weights;
  }
  u.args.num_tokens_per_rank = u.layout.num_tokens_per_rank;
  u.args.is_token_in_rank = u.layout.is_token_in_rank;
  u.args.num_tokens_per_expert = u.layout.num_tokens_per_expert;
  u.args.expert_alignment = c.expert_alignment;
  u.args.config.num_sms = c.num_sms;
  return u;
}

std::vector<std::int64_t> topk_of(const DeviceTensor& t, bool idx32) {
  if (!idx32) return download<std::int64_t>(t);
  const auto narrow = download<std::int32_t>(t);
  return {narrow.begin(), narrow.end()};
}

void finish(Buffer& buffer, const EventHandle& event, const Mode& mode) {
  if (mode.async_finish) {
    ASSERT_TRUE(event.valid());
    event.wait(gpu_env().stream);
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  buffer.check_status();
}

// Combines random expert outputs of `got`'s rows (padding rows too: they must be ignored) with
// the case's biases and the received weights, against ref::ht_combine.
void run_combine(Buffer& buffer, const HtCase& c, const Mode& mode,
                 const std::vector<ref::HtRankInput>& inputs, const std::vector<ref::HtRankOutput>& expected,
                 const DispatchResult& got) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  std::vector<ref::HtCombineRankInput> cin(static_cast<std::size_t>(R));
  std::vector<ref::HtRoute> routes;
  std::vector<std::int64_t> num_tokens;
  for (int r = 0; r < R; ++r) {
    const auto& e = expected[static_cast<std::size_t>(r)];
    auto& ci = cin[static_cast<std::size_t>(r)];
    const std::int64_t T = inputs[static_cast<std::size_t>(r)].num_tokens;
    ci.x = random_bf16(seed_for(c.seed * 31 + 5, r), static_cast<std::size_t>(e.num_rows * c.hidden));
    if (c.with_topk) ci.topk_weights = e.recv_topk_weights;
    if (c.biases) {
      ci.bias0 = random_bf16(seed_for(c.seed * 31 + 6, r), static_cast<std::size_t>(T * c.hidden));
      ci.bias1 = random_bf16(seed_for(c.seed * 31 + 7, r), static_cast<std::size_t>(T * c.hidden));
    }
    routes.push_back(e.route);
    num_tokens.push_back(T);
  }
  const auto want = ref::ht_combine(c.hidden, c.with_topk ? c.num_topk : 0, num_tokens, routes, cin);
  const auto& mine = cin[static_cast<std::size_t>(me)];
  const ref::HtRankOutput& mine_expected = expected[static_cast<std::size_t>(me)];
  const std::int64_t T = inputs[static_cast<std::size_t>(me)].num_tokens;
  DeviceTensor y = upload(mine.x, DType::kBF16, {mine_expected.num_rows, c.hidden});
  DeviceTensor weights, b0, b1;
  CombineArgs args;
  args.x = y;
  if (c.with_topk) {
    // A copy: zero-copy outputs live in the region, which combine refuses as input.
    weights = upload(mine_expected.recv_topk_weights, DType::kF32, {mine_expected.num_rows, c.num_topk});
    args.topk_weights = weights;
  }
  if (c.biases) {
    b0 = upload(mine.bias0, DType::kBF16, {T, c.hidden});
    b1 = upload(mine.bias1, DType::kBF16, {T, c.hidden});
    args.bias0 = b0;
    args.bias1 = b1;
  }
  args.handle = &got.handle;
  args.config.num_sms = c.num_sms;
  const CombineResult combined =
      buffer.combine(args, {.stream = env.stream, .async_finish = mode.async_finish});
  finish(buffer, combined.event, mode);
  const Mismatches x_off = bf16_off(download<std::uint16_t>(combined.x),
                                    want[static_cast<std::size_t>(me)].out, kCombineXRel, kCombineXAbs);
  EXPECT_EQ(x_off.count, 0u) << "combined x: first off at " << x_off.first;
  if (c.with_topk) {
    const Mismatches w_off =
        f32_off(download<float>(combined.topk_weights), want[static_cast<std::size_t>(me)].topk_weights,
                kCombineWeightRel, kCombineWeightAbs);
    EXPECT_EQ(w_off.count, 0u) << "combined topk_weights: first off at " << w_off.first;
  }
}

void run_case(Buffer& buffer, const HtCase& c, const Mode& mode = {}) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank, G = buffer.num_domain_ranks();
  ASSERT_GT(buffer.num_domains(), 1) << "set EPCOMM_RANKS_PER_DOMAIN so that the ranks form several domains";
  const ref::Geometry geometry{R, c.experts_per_rank * R, G};
  std::vector<ref::HtRankInput> inputs;
  for (int r = 0; r < R; ++r) inputs.push_back(make_ht_input(c, r, R));
  ref::HtDispatchOptions ref_options;
  ref_options.expert_alignment = c.expert_alignment;
  ref_options.with_topk = c.with_topk;
  std::int64_t max_tokens = 0;
  for (const auto& in : inputs) max_tokens = std::max(max_tokens, in.num_tokens);
  ref_options.num_worst_tokens = c.worst_case ? max_tokens * R : 0;
  const auto expected = ref::ht_dispatch(geometry, inputs, ref_options);
  const ref::HtRankInput& in = inputs[static_cast<std::size_t>(me)];
  const ref::HtRankOutput& want = expected[static_cast<std::size_t>(me)];

  const CallOptions options{.stream = env.stream, .async_finish = mode.async_finish};
  Inputs u = upload_inputs(buffer, c, in, geometry.num_experts, options);
  u.args.num_worst_tokens = ref_options.num_worst_tokens;
  u.args.zero_copy = mode.zero_copy;
  if (mode.zero_copy) {
    // The region is not poisoned by any allocator: a first call names the rows, they are
    // poisoned, and the checked call must rewrite every one.
    DispatchResult first = buffer.dispatch(u.args, options);
    finish(buffer, first.event, mode);
    for (const DeviceTensor* t : std::initializer_list<const DeviceTensor*>{
             &first.recv_x, &first.recv_x_scales, &first.recv_topk_idx, &first.recv_topk_weights,
             &handle_state(first.handle).recv_src_idx})
      if (t->defined() && t->numel() > 0) fill_poison(t->data(), t->view().nbytes(), env.stream);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  }
  const DispatchResult got = buffer.dispatch(u.args, options);
  finish(buffer, got.event, mode);

  const auto n = static_cast<std::size_t>(want.num_recv_tokens);
  ASSERT_EQ(got.handle.num_rows(), want.num_rows);
  expect_rows(download<std::uint8_t>(got.recv_x), want.recv_x, n * static_cast<std::size_t>(in.row_bytes),
              "recv_x");
  expect_rows(download<std::int32_t>(handle_state(got.handle).recv_src_idx), want.route.src_token, n,
              "recv_src_idx");
  if (c.fp8)
    expect_rows(download<float>(got.recv_x_scales), want.recv_scales,
                n * static_cast<std::size_t>(in.num_scales), "recv_x_scales");
  if (c.with_topk) {
    const std::size_t rows_k = static_cast<std::size_t>(want.num_rows) * static_cast<std::size_t>(c.num_topk);
    expect_rows(topk_of(got.recv_topk_idx, c.idx32), want.recv_topk_idx, rows_k, "recv_topk_idx");
    expect_rows(download<float>(got.recv_topk_weights), want.recv_topk_weights, rows_k, "recv_topk_weights");
  }
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_tokens_per_expert),
            want.num_recv_tokens_per_expert);
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_dev)[0], want.num_recv_tokens);
  if (!c.worst_case) {
    EXPECT_EQ(got.handle.num_recv_tokens(), want.num_recv_tokens);
    EXPECT_EQ(std::vector<std::int32_t>(got.num_recv_tokens_per_expert.begin(),
                                        got.num_recv_tokens_per_expert.end()),
              want.num_recv_tokens_per_expert);
  }
  if (mode.combine) run_combine(buffer, c, mode, inputs, expected, got);
  if (!mode.cached) return;
  // Same routes, new payloads: no layout, no count exchange, no host wait.
  std::vector<ref::HtRankInput> inputs2;
  for (int r = 0; r < R; ++r) inputs2.push_back(make_ht_input(c, r, R, /*salt=*/1));
  const auto want2 = ref::ht_dispatch(geometry, inputs2, ref_options)[static_cast<std::size_t>(me)];
  Inputs u2 = upload_inputs(buffer, c, inputs2[static_cast<std::size_t>(me)], geometry.num_experts, options);
  DispatchArgs cached;
  cached.x = u2.x;
  cached.x_scales = u2.scales_view;
  cached.handle = &got.handle;
  cached.config.num_sms = c.num_sms;
  cached.zero_copy = mode.zero_copy;
  const DispatchResult again = buffer.dispatch(cached, options);
  finish(buffer, again.event, mode);
  expect_rows(download<std::uint8_t>(again.recv_x), want2.recv_x, n * static_cast<std::size_t>(in.row_bytes),
              "cached recv_x");
  if (c.fp8)
    expect_rows(download<float>(again.recv_x_scales), want2.recv_scales,
                n * static_cast<std::size_t>(in.num_scales), "cached recv_x_scales");
}

// Sized for the largest case below at every SM budget the cases use.
std::int64_t rdma_bytes() {
  const GpuEnv& env = gpu_env();
  int sms = 0;
  EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, env.device));
  const char* given = std::getenv("EPCOMM_RANKS_PER_DOMAIN");
  const int G = given != nullptr ? std::atoi(given) : env.world;
  const MultiDomainShape shape{.num_tokens = 1500,
                               .hidden = 8192,
                               .num_topk = 32,
                               .num_experts = 128 * env.world,
                               .num_ranks = env.world,
                               .ranks_per_domain = G};
  return multi_domain_rdma_bytes_hint(shape, sms);
}

class Md : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    buffer_ = new Buffer(gpu_env().bootstrap, BufferOptions{.num_nvl_bytes = kNvlBytes,
                                                            .num_rdma_bytes = rdma_bytes(),
                                                            .allocator = poisoning_allocator()});
  }
  static void TearDownTestSuite() {
    delete buffer_;
    buffer_ = nullptr;
  }
  static Buffer* buffer_;
};
Buffer* Md::buffer_ = nullptr;

TEST_F(Md, Bf16) {
  run_case(*buffer_, {.seed = 1});
}
TEST_F(Md, Fp8ColumnMajorScales) {
  run_case(*buffer_, {.fp8 = true, .seed = 2});
}
TEST_F(Md, Fp8RowMajorScalesInt32Index) {
  run_case(*buffer_, {.fp8 = true, .idx32 = true, .col_major_scales = false, .seed = 3});
}
TEST_F(Md, WithoutTopk) {
  run_case(*buffer_, {.with_topk = false, .seed = 4});
}
TEST_F(Md, SkewedRoutingWithEmptySlots) {
  run_case(*buffer_, {.num_tokens = 1024, .skew = true, .seed = 5});
}
TEST_F(Md, RankWithNoTokens) {
  run_case(*buffer_, {.num_tokens = 300, .tokens_on_rank1 = 0, .seed = 6});
}
TEST_F(Md, ExpertAlignment) {
  run_case(*buffer_, {.expert_alignment = 128, .seed = 7});
}
TEST_F(Md, WorstCaseBf16) {
  run_case(*buffer_, {.worst_case = true, .seed = 8});
}
TEST_F(Md, WorstCaseFp8ZeroCopy) {
  run_case(*buffer_, {.fp8 = true, .worst_case = true, .seed = 9}, {.zero_copy = true});
}
TEST_F(Md, AsyncFinish) {
  run_case(*buffer_, {.seed = 10}, {.async_finish = true});
}
TEST_F(Md, ZeroCopyBf16) {
  run_case(*buffer_, {.seed = 11}, {.zero_copy = true});
}
TEST_F(Md, TopkUpTo32) {
  run_case(*buffer_, {.num_tokens = 256, .num_topk = 32, .experts_per_rank = 64, .seed = 13});
}
TEST_F(Md, NoBiases) {
  run_case(*buffer_, {.biases = false, .seed = 12});
}
TEST_F(Md, LargestHidden) {
  run_case(*buffer_, {.num_tokens = 700, .hidden = 8192, .seed = 14});
}

class MdSms : public Md, public ::testing::WithParamInterface<int> {};
TEST_P(MdSms, Budget) {
  int sms = GetParam();
  if (sms == 0)
    EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, gpu_env().device));
  // Small budgets make rings much shorter than a channel: senders wait for credits.
  run_case(*buffer_, {.num_tokens = 1500, .skew = true, .num_sms = sms, .seed = 30});
  run_case(*buffer_, {.num_tokens = 1500, .fp8 = true, .num_sms = sms, .worst_case = true, .seed = 31});
}
INSTANTIATE_TEST_SUITE_P(Budgets, MdSms, ::testing::Values(2, 24, 0));  // 0: every SM

TEST_F(Md, BackToBackCalls) {
  run_case(*buffer_, {.num_tokens = 200, .seed = 40});
  for (int i = 0; i < 2; ++i) run_case(*buffer_, {.num_tokens = 200, .seed = 41u + i}, {.cached = false});
  for (int i = 0; i < 100; ++i)
    run_case(*buffer_,
             {.num_tokens = 64,
              .hidden = 2048,
              .num_sms = 2 + 2 * (i % 6),
              .worst_case = i % 3 == 0,
              .seed = 100u + i},
             {.cached = i % 5 == 0});
}

// The last rank never calls dispatch: the ranks waiting on it (its forwarders' peers of the same
// local index in other domains, and its own domain) get a timeout naming it; every other rank a
// timeout too, within the bound. Its own Buffer (a timeout leaves a Buffer unusable).
TEST(MdPeerGone, OthersTimeOutNamingIt) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = kNvlBytes,
                                             .num_rdma_bytes = rdma_bytes(),
                                             .timeout_ms = 3000,
                                             .allocator = poisoning_allocator()});
  const int G = buffer.num_domain_ranks(), gone = env.world - 1;
  if (env.rank != gone) {
    const HtCase c{.num_tokens = 128, .seed = 50};
    Inputs u = upload_inputs(buffer, c, make_ht_input(c, env.rank, env.world), c.experts_per_rank * env.world,
                             {.stream = env.stream});
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
    const auto start = std::chrono::steady_clock::now();
    try {
      buffer.dispatch(u.args, {.stream = env.stream});
      ADD_FAILURE() << "expected a timeout: rank " << gone << " never calls";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
      EXPECT_NE(e.message().find("waiting for rank"), std::string::npos) << e.what();
      // Its forwarder's peers of the same local index wait on its count record directly.
      if (env.rank % G == gone % G && env.rank / G != gone / G) {
        const std::string named =
            "waiting for rank " + std::to_string(gone) + " of domain " + std::to_string(gone / G);
        EXPECT_NE(e.message().find(named), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  }
  env.bootstrap->barrier();  // the silent rank stays until the others have their errors
}

}  // namespace
}  // namespace epcomm::test
