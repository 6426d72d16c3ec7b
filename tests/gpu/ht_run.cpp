#include "ht_run.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>

#include "checks.hpp"
#include "core/cuda_check.hpp"
#include "intranode/dispatch_handle.hpp"

namespace epcomm::test {
namespace {

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

// Poisons the memory a view covers. Catches (issue 18, item 3): the old 0xff bytes read -1 as
// int32/int64, the expected value of every non-local top-k slot and padding row, so unwritten -1s
// passed.
void poison(const DeviceTensor& t) {
  if (t.defined() && t.numel() > 0) fill_poison(t.data(), t.view().nbytes(), gpu_env().stream);
}

// x (and FP8 scales) of one rank on the device.
HtPayload upload_payload(const HtCase& c, const ref::HtRankInput& in) {
  HtPayload p;
  p.x = upload(in.x, c.fp8 ? DType::kFP8E4M3 : DType::kBF16, {in.num_tokens, c.hidden});
  if (c.fp8) {
    p.scales = upload(in.scales, DType::kF32, {static_cast<std::int64_t>(in.scales.size())});
    p.scales_view = Tensor::strided(p.scales.data(), DType::kF32, {in.num_tokens, in.num_scales},
                                    {in.scale_stride_token, in.scale_stride_block});
  }
  return p;
}

// recv_topk_idx as int64, whichever index type the case used.
std::vector<std::int64_t> download_topk(const DeviceTensor& t, bool idx32) {
  if (!idx32) return download<std::int64_t>(t);
  const auto narrow = download<std::int32_t>(t);
  return {narrow.begin(), narrow.end()};
}

// A cached dispatch's payload outputs (x, FP8 scales) against the reference of the salted inputs
// (`in`, `want_salted`): routes do not depend on the salt, so that reference holds the cached rows.
void expect_cached_outputs(const DispatchResult& again, const HtCase& c, const ref::HtRankInput& in,
                           const ref::HtRankOutput& want_salted) {
  const auto n = static_cast<std::size_t>(want_salted.num_recv_tokens);
  expect_same(download<std::uint8_t>(again.recv_x), want_salted.recv_x,
              n * static_cast<std::size_t>(in.row_bytes), "cached recv_x");
  // Catches (issue 18, item 9): a cached FP8 dispatch that leaves its new scales unsent (the
  // outputs stay poisoned, or keep the first call's scales in zero-copy mode).
  if (c.fp8)
    expect_same(download<float>(again.recv_x_scales), want_salted.recv_scales,
                n * static_cast<std::size_t>(in.num_scales), "cached recv_x_scales");
}

// Random expert outputs for every row a rank received (padding rows too), the received weights and
// the case's biases, for every rank, and the reference's combine of them.
struct HtCombineExpected {
  std::vector<ref::HtCombineRankInput> inputs;    // [R]
  std::vector<ref::HtCombineRankOutput> outputs;  // [R]
};
HtCombineExpected ht_combine_expected(const HtCase& c, const HtExpected& expected) {
  const int R = expected.geometry.num_ranks;
  HtCombineExpected combine;
  combine.inputs.resize(static_cast<std::size_t>(R));
  std::vector<ref::HtRoute> routes;
  std::vector<std::int64_t> num_tokens;
  for (int r = 0; r < R; ++r) {
    const ref::HtRankOutput& e = expected.output(r);
    const std::int64_t T = expected.input(r).num_tokens;
    ref::HtCombineRankInput& ci = combine.inputs[static_cast<std::size_t>(r)];
    ci.x = random_bf16(seed_for(c.seed * 31 + 5, r), static_cast<std::size_t>(e.num_rows * c.hidden));
    if (c.with_topk) ci.topk_weights = e.recv_topk_weights;
    if (c.biases) {
      ci.bias0 = random_bf16(seed_for(c.seed * 31 + 6, r), static_cast<std::size_t>(T * c.hidden));
      ci.bias1 = random_bf16(seed_for(c.seed * 31 + 7, r), static_cast<std::size_t>(T * c.hidden));
    }
    routes.push_back(e.route);
    num_tokens.push_back(T);
  }
  combine.outputs =
      ref::ht_combine(c.hidden, c.with_topk ? c.num_topk : 0, num_tokens, routes, combine.inputs);
  return combine;
}

// This rank's combine inputs on the device, and the combine arguments naming them for `handle`.
struct HtCombineInputs {
  DeviceTensor y, weights, bias0, bias1;
  CombineArgs args;
};
HtCombineInputs upload_combine_inputs(const HtCase& c, const HtExpected& expected,
                                      const HtCombineExpected& combine, const DispatchHandle& handle,
                                      const Tensor& recv_weights) {
  const int me = gpu_env().rank;
  const ref::HtCombineRankInput& mine = combine.inputs[static_cast<std::size_t>(me)];
  const ref::HtRankOutput& received = expected.output(me);
  const std::int64_t T = expected.input(me).num_tokens;
  HtCombineInputs u;
  u.y = upload(mine.x, DType::kBF16, {received.num_rows, c.hidden});
  u.args.x = u.y;
  if (c.with_topk && recv_weights.defined()) {
    u.args.topk_weights = recv_weights;
  } else if (c.with_topk) {
    u.weights = upload(received.recv_topk_weights, DType::kF32, {received.num_rows, c.num_topk});
    u.args.topk_weights = u.weights;
  }
  if (c.biases) {
    u.bias0 = upload(mine.bias0, DType::kBF16, {T, c.hidden});
    u.bias1 = upload(mine.bias1, DType::kBF16, {T, c.hidden});
    u.args.bias0 = u.bias0;
    u.args.bias1 = u.bias1;
  }
  u.args.handle = &handle;
  u.args.config.num_sms = c.num_sms;
  return u;
}

void expect_combined(const CombineResult& got, const HtCase& c, const ref::HtCombineRankOutput& want) {
  expect_bf16_close(download<std::uint16_t>(got.x), want.out, "combined x");
  if (c.with_topk)
    expect_f32_close(download<float>(got.topk_weights), want.topk_weights, "combined topk_weights");
}

}  // namespace

HtExpected ht_expected(const HtCase& c, int num_ranks, int ranks_per_domain, std::uint64_t salt) {
  HtExpected e;
  e.geometry = ref::Geometry{num_ranks, c.experts_per_rank * num_ranks, ranks_per_domain};
  for (int r = 0; r < num_ranks; ++r) e.inputs.push_back(make_ht_input(c, r, num_ranks, salt));
  e.options.expert_alignment = c.expert_alignment;
  e.options.with_topk = c.with_topk;
  std::int64_t max_tokens = 0;
  for (const auto& in : e.inputs) max_tokens = std::max(max_tokens, in.num_tokens);
  e.options.num_worst_tokens = c.worst_case ? max_tokens * num_ranks : 0;
  e.outputs = ref::ht_dispatch(e.geometry, e.inputs, e.options);
  return e;
}

HtDeviceInputs upload_inputs(Buffer& buffer, const HtCase& c, const ref::HtRankInput& in, int num_experts,
                             const CallOptions& layout_options) {
  HtDeviceInputs u;
  u.payload = upload_payload(c, in);
  if (c.idx32) {
    u.topk = upload(std::vector<std::int32_t>(in.topk_idx.begin(), in.topk_idx.end()), DType::kI32,
                    {in.num_tokens, in.num_topk});
  } else {
    u.topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, in.num_topk});
  }
  u.weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});
  u.layout = buffer.get_dispatch_layout(u.topk, num_experts, layout_options);
  u.args.x = u.payload.x;
  u.args.x_scales = u.payload.scales_view;
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

void wait_for(const EventHandle& event, bool async_finish) {
  if (async_finish) {
    ASSERT_TRUE(event.valid());
    event.wait(gpu_env().stream);
  } else {
    EXPECT_FALSE(event.valid());
  }
}

void finish(Buffer& buffer, const EventHandle& event, bool async_finish) {
  wait_for(event, async_finish);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
  buffer.check_status();
}

void expect_dispatch_outputs(const DispatchResult& got, const HtCase& c, const ref::HtRankInput& in,
                             const ref::HtRankOutput& want) {
  const auto n = static_cast<std::size_t>(want.num_recv_tokens);
  ASSERT_EQ(got.handle.num_rows(), want.num_rows);
  ASSERT_EQ(got.recv_x.size(0), want.num_rows);
  expect_same(download<std::uint8_t>(got.recv_x), want.recv_x, n * static_cast<std::size_t>(in.row_bytes),
              "recv_x");
  expect_same(download<std::int32_t>(handle_state(got.handle).recv_src_idx), want.route.src_token, n,
              "recv_src_idx");
  if (c.fp8)
    expect_same(download<float>(got.recv_x_scales), want.recv_scales,
                n * static_cast<std::size_t>(in.num_scales), "recv_x_scales");
  if (c.with_topk) {
    const std::size_t rows_k = static_cast<std::size_t>(want.num_rows) * static_cast<std::size_t>(c.num_topk);
    expect_same(download_topk(got.recv_topk_idx, c.idx32), want.recv_topk_idx, rows_k, "recv_topk_idx");
    expect_same(download<float>(got.recv_topk_weights), want.recv_topk_weights, rows_k, "recv_topk_weights");
  }
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_tokens_per_expert),
            want.num_recv_tokens_per_expert);
  EXPECT_EQ(download<std::int32_t>(handle_state(got.handle).num_recv_dev)[0], want.num_recv_tokens);
  if (!c.worst_case) {  // the host learns the counts only outside worst-case mode
    EXPECT_EQ(got.handle.num_recv_tokens(), want.num_recv_tokens);
    EXPECT_EQ(std::vector<std::int32_t>(got.num_recv_tokens_per_expert.begin(),
                                        got.num_recv_tokens_per_expert.end()),
              want.num_recv_tokens_per_expert);
  }
}

void dispatch_and_poison(Buffer& buffer, const DispatchArgs& args, const CallOptions& options) {
  const DispatchResult first = buffer.dispatch(args, options);
  finish(buffer, first.event, options.async_finish);
  for (const DeviceTensor* t : {&first.recv_x, &first.recv_x_scales, &first.recv_topk_idx,
                                &first.recv_topk_weights, &handle_state(first.handle).recv_src_idx})
    poison(*t);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(gpu_env().stream));
}

void run_cached_dispatch(Buffer& buffer, const HtCase& c, int ranks_per_domain, const DispatchResult& got,
                         bool zero_copy, const CallOptions& options) {
  const GpuEnv& env = gpu_env();
  const HtExpected salted = ht_expected(c, env.world, ranks_per_domain, /*salt=*/1);
  const HtPayload payload = upload_payload(c, salted.input(env.rank));
  DispatchArgs cached;
  cached.x = payload.x;
  cached.x_scales = payload.scales_view;
  cached.handle = &got.handle;
  cached.config.num_sms = c.num_sms;
  cached.zero_copy = zero_copy;
  const DispatchResult again = buffer.dispatch(cached, options);
  finish(buffer, again.event, options.async_finish);
  expect_cached_outputs(again, c, salted.input(env.rank), salted.output(env.rank));
}

void run_combine(Buffer& buffer, const HtCase& c, const HtExpected& expected, const DispatchResult& got,
                 const Tensor& recv_weights, const CallOptions& options, int calls) {
  const HtCombineExpected combine = ht_combine_expected(c, expected);
  const HtCombineInputs u = upload_combine_inputs(c, expected, combine, got.handle, recv_weights);
  std::vector<CombineResult> earlier;  // kept until the stream is drained: their kernels write them
  for (int i = 1; i < calls; ++i) earlier.push_back(buffer.combine(u.args, options));
  const CombineResult combined = buffer.combine(u.args, options);
  finish(buffer, combined.event, options.async_finish);
  expect_combined(combined, c, combine.outputs[static_cast<std::size_t>(gpu_env().rank)]);
}

}  // namespace epcomm::test
