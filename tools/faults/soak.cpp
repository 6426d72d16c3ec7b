// The soak of issue 22: many low-latency dispatch/combine pairs by CUDA-graph replay and many
// high-throughput pairs on 2 ranks (which may share one GPU), shapes varied within bounds, each
// block of check_every calls starting with fresh routing, poisoned outputs and a full comparison with
// the CPU reference; device memory (cudaMemGetInfo), host memory (VmRSS) and open file descriptors
// read after a warm-up and at the end must agree within stated bounds. A GPU test program (the
// harness of tests/gpu: exit 77 without a GPU). Counts and bounds from the environment:
//   EPCOMM_SOAK_LL_PAIRS (default 2000), EPCOMM_SOAK_HT_PAIRS (200), EPCOMM_SOAK_CHECK_EVERY (100),
//   EPCOMM_SOAK_JSON (rank 0 writes the result there), EPCOMM_SOAK_DEVICE_MIB (growth bound, 64),
//   EPCOMM_SOAK_RSS_MIB (64), EPCOMM_SOAK_FDS (0).
// The full soak: EPCOMM_SOAK_LL_PAIRS=100000 EPCOMM_SOAK_HT_PAIRS=10000.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "faults/mem_probe.hpp"
#include "faults/soak_report.hpp"
#include "gpu/checks.hpp"
#include "gpu/ht_inputs.hpp"
#include "gpu/ll_case.hpp"
#include "gpu/ll_check.hpp"

namespace epcomm::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kSyncEvery = 32;  // launches queued before the host waits (bounds the queue)

std::int64_t env_long(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

struct SoakConfig {
  std::int64_t ll_pairs = env_long("EPCOMM_SOAK_LL_PAIRS", 2000);
  std::int64_t ht_pairs = env_long("EPCOMM_SOAK_HT_PAIRS", 200);
  std::int64_t check_every = std::max<std::int64_t>(1, env_long("EPCOMM_SOAK_CHECK_EVERY", 100));
  std::int64_t device_bound = env_long("EPCOMM_SOAK_DEVICE_MIB", 64) << 20;  // bytes
  std::int64_t rss_bound_kib = env_long("EPCOMM_SOAK_RSS_MIB", 64) << 10;
  std::int64_t fd_bound = env_long("EPCOMM_SOAK_FDS", 0);
  std::string json = std::getenv("EPCOMM_SOAK_JSON") ? std::getenv("EPCOMM_SOAK_JSON") : "";
};

// What one rank holds, read when every rank is at the same point (a shared GPU's used memory
// counts every process on it).
faults::SoakUsage usage_now() {
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  gpu_env().bootstrap->barrier();
  std::size_t free = 0, total = 0;
  EPCOMM_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  faults::SoakUsage u{static_cast<std::int64_t>(total - free), faults::rss_kib(), faults::open_fd_count()};
  gpu_env().bootstrap->barrier();  // nobody allocates before everyone read
  return u;
}

// ---- low latency: one Buffer and one captured dispatch + combine per shape ----------------------

struct LlVariant {
  LlCase c;
  bool hook = false;  // split phases: the receives are captured too
  std::unique_ptr<Buffer> buffer;
  DeviceInputs di;
  LlDispatchResult d;
  LlCombineResult cr;
  Tensor y;  // BF16: recv_x itself (rows echo their tokens); FP8: the zero-copy buffer, hashed values
  cudaGraphExec_t exec = nullptr;
};

// Bounds of the varied shapes: T 32..128, hidden 1024..7168, k 4..8, tokens per rank unequal,
// BF16 and FP8, whole and split calls.
std::vector<LlVariant> make_ll_variants() {
  std::vector<LlVariant> v(3);
  v[0].c = {
      .max_tokens = 128, .hidden = 2048, .num_topk = 8, .experts_per_rank = 8, .use_fp8 = false, .seed = 31};
  v[1].c = {
      .max_tokens = 64, .num_tokens = 48, .hidden = 1024, .num_topk = 4, .experts_per_rank = 4, .seed = 32};
  v[1].hook = true;
  v[2].c = {.max_tokens = 32,
            .tokens_on_rank1 = 20,
            .hidden = 7168,
            .num_topk = 6,
            .experts_per_rank = 16,
            .seed = 33};
  return v;
}

void capture(LlVariant& v) {
  const GpuEnv& env = gpu_env();
  const LowLatencyOptions o = v.c.buffer_options(env.world);
  v.buffer = std::make_unique<Buffer>(env.bootstrap, ll_buffer_options(o, env.world), o);
  v.di = upload_inputs(make_inputs(v.c, env.world, 0)[static_cast<std::size_t>(env.rank)], v.c);
  finish(*v.buffer);
  const CallOptions call{.stream = env.stream};
  cudaGraph_t graph = nullptr;
  EPCOMM_CUDA_CHECK(cudaStreamBeginCapture(env.stream, cudaStreamCaptureModeRelaxed));
  v.d = v.buffer->low_latency_dispatch(v.di.x, v.di.topk, v.c.options(v.hook), call);
  if (v.hook) v.d.receive();
  const bool echo = !v.c.use_fp8;
  v.y = echo ? v.d.recv_x : v.buffer->get_next_low_latency_combine_buffer(v.d.handle);
  v.cr = v.buffer->low_latency_combine(v.y, v.di.topk, v.di.weights, v.d.handle,
                                       {.zero_copy = !echo, .return_recv_hook = v.hook}, call);
  if (v.hook) v.cr.receive();
  EPCOMM_CUDA_CHECK(cudaStreamEndCapture(env.stream, &graph));
  EPCOMM_CUDA_CHECK(cudaGraphInstantiate(&v.exec, graph, 0));
  EPCOMM_CUDA_CHECK(cudaGraphDestroy(graph));
}

// New routing and values (from `salt`), poisoned outputs, one replay, every output element compared.
void checked_ll_replay(LlVariant& v, std::uint64_t salt) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const LlCase& c = v.c;
  const std::vector<RankData> inputs = make_inputs(c, R, salt);
  std::vector<ref::LlRankInput> ref_in;
  for (const auto& rd : inputs) ref_in.push_back(rd.in);
  const auto expected = ref::ll_dispatch(geometry_of(c, R), c.hidden, c.max_tokens, ref_in, ref_options(c));
  refill_inputs(v.di, inputs[static_cast<std::size_t>(me)], c);
  const bool echo = !c.use_fp8;
  std::vector<std::vector<std::uint16_t>> ys(static_cast<std::size_t>(R));
  if (!echo) {
    for (int r = 0; r < R; ++r)
      ys[static_cast<std::size_t>(r)] = make_y(YMode::kHash, c, R, r, salt, {}, inputs);
    copy_to_device(v.y.data, ys[static_cast<std::size_t>(me)].data(), v.y.nbytes());
  }
  poison_outputs(*v.buffer);
  fill_poison(v.cr.out.data, v.cr.out.nbytes(), env.stream);  // combine's output lies outside the region
  EPCOMM_CUDA_CHECK(cudaGraphLaunch(v.exec, env.stream));
  finish(*v.buffer);
  const GotDispatch got = download_dispatch(v.d);
  expect_dispatch_matches(got, expected[static_cast<std::size_t>(me)], c, R, "soak dispatch");
  const auto routing = gather_routing(got, c, R);
  if (echo)
    for (int r = 0; r < R; ++r)
      ys[static_cast<std::size_t>(r)] =
          make_y(YMode::kEcho, c, R, r, salt, routing[static_cast<std::size_t>(r)], inputs);
  expect_combine_matches(download<std::uint16_t>(v.cr.out), c, R, routing, ys, inputs, "soak combine");
}

// ---- high throughput: one Buffer, shapes varied per block ---------------------------------------

struct HtVariant {
  HtCase c;
  std::vector<ref::HtRankInput> inputs;  // every rank's, from the last checked call
  DeviceTensor x, topk, weights;
};

std::vector<HtVariant> make_ht_variants() {
  std::vector<HtVariant> v(3);
  v[0].c = {
      .num_tokens = 256, .hidden = 2048, .num_topk = 4, .experts_per_rank = 8, .num_sms = 8, .seed = 41};
  v[1].c = {.num_tokens = 128,
            .tokens_on_rank1 = 64,
            .hidden = 4096,
            .num_topk = 8,
            .experts_per_rank = 16,
            .skew = true,
            .num_sms = 12,
            .seed = 42};
  v[2].c = {.num_tokens = 64, .hidden = 7168, .num_topk = 2, .experts_per_rank = 4, .num_sms = 6, .seed = 43};
  return v;
}

void refill_ht(HtVariant& v, std::uint64_t salt) {
  const GpuEnv& env = gpu_env();
  v.inputs.clear();
  for (int r = 0; r < env.world; ++r) v.inputs.push_back(make_ht_input(v.c, r, env.world, salt));
  const ref::HtRankInput& in = v.inputs[static_cast<std::size_t>(env.rank)];
  v.x = upload(in.x, DType::kBF16, {in.num_tokens, v.c.hidden});
  v.topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, v.c.num_topk});
  v.weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, v.c.num_topk});
}

template <typename T>
void expect_bitwise(const std::vector<T>& got, const std::vector<T>& want, std::size_t count,
                    const char* what) {
  ASSERT_GE(got.size(), count) << what;
  ASSERT_GE(want.size(), count) << what;
  const Mismatches m = bitwise_mismatches(got, want, count);
  EXPECT_EQ(m.count, 0u) << what << ": " << m.count << " of " << count << " differ, first at " << m.first;
}

// Compares one pair's outputs with the reference of every rank's inputs.
void check_ht(const HtVariant& v, const DispatchResult& d, const CombineResult& cr) {
  const GpuEnv& env = gpu_env();
  const int R = env.world, me = env.rank;
  const ref::Geometry geometry{R, v.c.experts_per_rank * R, R};
  const auto expected = ref::ht_dispatch(geometry, v.inputs, {});
  const ref::HtRankOutput& want = expected[static_cast<std::size_t>(me)];
  const auto rows = static_cast<std::size_t>(want.num_recv_tokens);
  ASSERT_EQ(d.handle.num_recv_tokens(), want.num_recv_tokens);
  expect_bitwise(download<std::uint8_t>(d.recv_x), want.recv_x,
                 rows * static_cast<std::size_t>(v.c.hidden) * 2, "recv_x");
  expect_bitwise(download<std::int64_t>(d.recv_topk_idx), want.recv_topk_idx, rows * v.c.num_topk,
                 "recv_topk_idx");
  expect_bitwise(download<float>(d.recv_topk_weights), want.recv_topk_weights, rows * v.c.num_topk,
                 "recv_topk_weights");
  EXPECT_EQ(d.num_recv_tokens_per_expert, want.num_recv_tokens_per_expert);
  // Combine of the received rows as they are: the reference sums each token's copies in rank order.
  std::vector<std::int64_t> num_tokens;
  std::vector<ref::HtRoute> routes;
  std::vector<ref::HtCombineRankInput> combine_in(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) {
    const ref::HtRankOutput& o = expected[static_cast<std::size_t>(r)];
    num_tokens.push_back(v.inputs[static_cast<std::size_t>(r)].num_tokens);
    routes.push_back(o.route);
    auto& ci = combine_in[static_cast<std::size_t>(r)];
    ci.x.resize(o.recv_x.size() / 2);
    std::memcpy(ci.x.data(), o.recv_x.data(), ci.x.size() * 2);
    ci.topk_weights = o.recv_topk_weights;
  }
  const auto combined = ref::ht_combine(v.c.hidden, v.c.num_topk, num_tokens, routes, combine_in);
  const auto& want_c = combined[static_cast<std::size_t>(me)];
  const Mismatches mx = bf16_off(download<std::uint16_t>(cr.x), want_c.out, kCombineXRel, kCombineXAbs);
  EXPECT_EQ(mx.count, 0u) << "combine x: " << mx.count << " values off, first at " << mx.first;
  const Mismatches mw =
      f32_off(download<float>(cr.topk_weights), want_c.topk_weights, kCombineWeightRel, kCombineWeightAbs);
  EXPECT_EQ(mw.count, 0u) << "combine weights: " << mw.count << " values off, first at " << mw.first;
}

void ht_pair(Buffer& buffer, HtVariant& v, bool check) {
  const GpuEnv& env = gpu_env();
  const CallOptions call{.stream = env.stream};
  const DispatchLayout layout = buffer.get_dispatch_layout(v.topk, v.c.experts_per_rank * env.world, call);
  DispatchArgs args = dispatch_args(v.x, v.topk, v.weights, layout);
  args.config.num_sms = v.c.num_sms;
  const DispatchResult d = buffer.dispatch(args, call);
  CombineArgs ca;
  ca.x = d.recv_x;
  ca.topk_weights = d.recv_topk_weights;
  ca.handle = &d.handle;
  ca.config.num_sms = v.c.num_sms;
  const CombineResult cr = buffer.combine(ca, call);
  if (!check) return;
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
  check_ht(v, d, cr);
}

// ---- the run ------------------------------------------------------------------------------------

// Runs `pairs` calls over the variants in blocks of check_every; a block's first call is checked
// with fresh inputs; the rest repeat them. Returns the counts.
template <typename Variants, typename Call>
faults::SoakPhase run_blocks(std::int64_t pairs, std::int64_t check_every, Variants& variants, Call call) {
  faults::SoakPhase r;
  const auto start = Clock::now();
  for (std::int64_t i = 0; i < pairs; ++i) {
    const bool check = i % check_every == 0;
    auto& v =
        variants[static_cast<std::size_t>((i / check_every) % static_cast<std::int64_t>(variants.size()))];
    call(v, check, static_cast<std::uint64_t>(1000 + i));
    r.checks += check;
    if ((i + 1) % kSyncEvery == 0) EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  r.pairs = pairs;
  r.shapes = static_cast<int>(variants.size());
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

std::vector<faults::SoakUsage> gather(const faults::SoakUsage& mine) {
  std::vector<faults::SoakUsage> all(static_cast<std::size_t>(gpu_env().world));
  gpu_env().bootstrap->all_gather(&mine, all.data(), sizeof(faults::SoakUsage));
  return all;
}

TEST(Soak, GraphReplayedLowLatencyAndHighThroughputPairs) {
  const GpuEnv& env = gpu_env();
  if (env.world != 2) GTEST_SKIP() << "the soak runs on 2 ranks";
  const SoakConfig cfg;
  std::vector<LlVariant> ll = make_ll_variants();
  for (LlVariant& v : ll) capture(v);
  std::vector<HtVariant> ht = make_ht_variants();
  Buffer ht_buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 28,
                                                .allocator = poisoning_allocator()});  // outputs poisoned
  const auto ll_call = [](LlVariant& v, bool check, std::uint64_t salt) {
    if (check) return checked_ll_replay(v, salt);
    EPCOMM_CUDA_CHECK(cudaGraphLaunch(v.exec, gpu_env().stream));
  };
  const auto ht_call = [&](HtVariant& v, bool check, std::uint64_t salt) {
    if (check) refill_ht(v, salt);
    ht_pair(ht_buffer, v, check);
  };
  // Warm-up: every variant checked once, so pools, caches and lazy state exist before "before".
  run_blocks(static_cast<std::int64_t>(ll.size()), 1, ll, ll_call);
  run_blocks(static_cast<std::int64_t>(ht.size()), 1, ht, ht_call);
  faults::SoakReport report{.num_ranks = env.world, .check_every = cfg.check_every};
  const faults::SoakUsage before = usage_now();
  report.ll = run_blocks(cfg.ll_pairs, cfg.check_every, ll, ll_call);
  report.ht = run_blocks(cfg.ht_pairs, cfg.check_every, ht, ht_call);
  for (LlVariant& v : ll) v.buffer->check_status();
  ht_buffer.check_status();
  const faults::SoakUsage after = usage_now();

  report.device_bound = cfg.device_bound;
  report.rss_bound_kib = cfg.rss_bound_kib;
  report.fd_bound = cfg.fd_bound;
  report.device_ok = faults::grew_within(before.device_used, after.device_used, cfg.device_bound);
  report.rss_ok = faults::grew_within(before.rss_kib, after.rss_kib, cfg.rss_bound_kib);
  report.fds_ok = faults::grew_within(before.fds, after.fds, cfg.fd_bound);
  EXPECT_TRUE(report.device_ok) << "device memory grew from " << before.device_used << " to "
                                << after.device_used;
  EXPECT_TRUE(report.rss_ok) << "RSS grew from " << before.rss_kib << " to " << after.rss_kib << " KiB";
  EXPECT_TRUE(report.fds_ok) << "open descriptors went from " << before.fds << " to " << after.fds;
  report.passed = !::testing::Test::HasFailure();
  report.before = gather(before);
  report.after = gather(after);
  for (LlVariant& v : ll) EPCOMM_CUDA_CHECK(cudaGraphExecDestroy(v.exec));
  if (env.rank == 0 && !cfg.json.empty()) std::ofstream(cfg.json) << faults::soak_json(report);
}

}  // namespace
}  // namespace epcomm::test
