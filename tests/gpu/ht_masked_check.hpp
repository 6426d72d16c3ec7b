// The masked high-throughput check of the GPU tests (test_rank_mask.cpp, test_faults.cpp): layout,
// dispatch and combine against the reference of the masked operations (ref::mask_ranks).
#pragma once

#include <cstring>
#include <vector>

#include "checks.hpp"
#include "epcomm/buffer.hpp"
#include "harness.hpp"
#include "ht_inputs.hpp"
#include "ht_run.hpp"  // expect_same

namespace epcomm::test {

// Layout, dispatch and combine of case `c` (BF16, no biases) on this rank of `buffer`'s group,
// against the reference of the masked operations (mask: [R], nonzero where a rank is masked). With
// `derive_layout` the dispatch is given topk_idx and num_experts alone (the layout call's outputs are
// still checked, then left unused).
inline void run_ht_masked(Buffer& buffer, const HtCase& c, const std::vector<std::uint8_t>& mask,
                          bool derive_layout = false) {
  const GpuEnv& env = gpu_env();
  const int R = buffer.num_ranks(), me = buffer.rank();
  const ref::Geometry g{R, c.experts_per_rank * R, R};
  std::vector<ref::HtRankInput> inputs;
  for (int r = 0; r < R; ++r) inputs.push_back(make_ht_input(c, r, R));
  const std::vector<ref::HtRankInput> live = ref::mask_ranks(g, inputs, mask);
  const auto want = ref::ht_dispatch(g, live, {.with_topk = true});
  const ref::HtRankInput& in = inputs[static_cast<std::size_t>(me)];
  const ref::HtRankOutput& mine = want[static_cast<std::size_t>(me)];

  DeviceTensor x = upload(in.x, DType::kBF16, {in.num_tokens, c.hidden});
  DeviceTensor topk = upload(in.topk_idx, DType::kI64, {in.num_tokens, c.num_topk});
  DeviceTensor weights = upload(in.topk_weights, DType::kF32, {in.num_tokens, c.num_topk});
  DispatchLayout layout = buffer.get_dispatch_layout(topk, g.num_experts, {.stream = env.stream});
  const ref::Layout want_layout = ref::get_dispatch_layout(
      g, live[static_cast<std::size_t>(me)].topk_idx, in.num_tokens, c.num_topk);
  EXPECT_EQ(download<std::int32_t>(layout.num_tokens_per_rank), want_layout.num_tokens_per_rank);
  EXPECT_EQ(download<std::int32_t>(layout.num_tokens_per_expert), want_layout.num_tokens_per_expert);
  EXPECT_EQ(download<std::uint8_t>(layout.is_token_in_rank), want_layout.is_token_in_rank);

  DispatchArgs args = dispatch_args(x, topk, weights, layout);
  if (derive_layout) leave_layout_to_dispatch(args, g.num_experts);
  args.config.num_sms = c.num_sms;
  const DispatchResult got = buffer.dispatch(args, {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
  ASSERT_EQ(got.handle.num_recv_tokens(), mine.num_recv_tokens);
  const auto rows = static_cast<std::size_t>(mine.num_recv_tokens);
  expect_same(download<std::uint8_t>(got.recv_x), mine.recv_x, rows * in.row_bytes, "recv_x");
  expect_same(download<std::int64_t>(got.recv_topk_idx), mine.recv_topk_idx, rows * c.num_topk,
              "recv_topk_idx");
  expect_same(download<float>(got.recv_topk_weights), mine.recv_topk_weights, rows * c.num_topk,
              "recv_topk_weights");
  EXPECT_EQ(got.num_recv_tokens_per_expert,
            std::vector<int>(mine.num_recv_tokens_per_expert.begin(), mine.num_recv_tokens_per_expert.end()));

  // Combine the received rows as they are (the reference does the same with its own).
  CombineArgs cargs;
  cargs.x = got.recv_x;
  cargs.topk_weights = got.recv_topk_weights;
  cargs.handle = &got.handle;
  cargs.config.num_sms = c.num_sms;
  const CombineResult combined = buffer.combine(cargs, {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
  std::vector<std::int64_t> tokens;
  std::vector<ref::HtRoute> routes;
  std::vector<ref::HtCombineRankInput> back(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) {
    const auto& w = want[static_cast<std::size_t>(r)];
    tokens.push_back(live[static_cast<std::size_t>(r)].num_tokens);
    routes.push_back(w.route);
    auto& b = back[static_cast<std::size_t>(r)];
    b.x.resize(w.recv_x.size() / 2);
    std::memcpy(b.x.data(), w.recv_x.data(), w.recv_x.size());
    b.topk_weights = w.recv_topk_weights;
  }
  const auto want_c = ref::ht_combine(c.hidden, c.num_topk, tokens, routes, back);
  const auto& mine_c = want_c[static_cast<std::size_t>(me)];
  const Mismatches off =
      bf16_off(download<std::uint16_t>(combined.x), mine_c.out, kCombineXRel, kCombineXAbs);
  EXPECT_EQ(off.count, 0u) << "combined x: first off at " << off.first;
  const Mismatches woff = f32_off(download<float>(combined.topk_weights), mine_c.topk_weights,
                                  kCombineWeightRel, kCombineWeightAbs);
  EXPECT_EQ(woff.count, 0u) << "combined topk_weights: first off at " << woff.first;
}

}  // namespace epcomm::test
