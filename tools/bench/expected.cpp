#include "bench/expected.hpp"

#include <cstring>
#include <functional>
#include <future>
#include <utility>

namespace epcomm::bench {

ExpectedHt compute_expected_ht(const Workload& workload, int num_ranks, int rank_idx, InputSet set) {
  const ref::Geometry geometry = geometry_of(workload, num_ranks);
  ref::HtDispatchOptions options;  // alignment 1, no worst-case padding, with top-k

  // Every rank's inputs, generated in parallel (independent seeds; most of the time at 8 ranks).
  std::vector<std::future<RankInputs>> pending;
  for (int r = 0; r < num_ranks; ++r)
    pending.push_back(
        std::async(std::launch::async, make_rank_inputs, std::cref(workload), num_ranks, r, set));
  std::vector<ref::HtRankInput> bf16_inputs(num_ranks);
  std::vector<ref::HtRankInput> fp8_inputs(num_ranks);
  for (int r = 0; r < num_ranks; ++r) {
    RankInputs in = pending[r].get();
    bf16_inputs[r] = std::move(in.bf16);
    fp8_inputs[r] = std::move(in.fp8);
  }

  ExpectedHt expected;
  {
    std::vector<ref::HtRankOutput> fp8_out = ref::ht_dispatch(geometry, fp8_inputs, options);
    expected.dispatch_fp8 = std::move(fp8_out[rank_idx]);
  }
  fp8_inputs.clear();

  std::vector<ref::HtRankOutput> bf16_out = ref::ht_dispatch(geometry, bf16_inputs, options);
  std::vector<int64_t> num_tokens(num_ranks);
  for (int r = 0; r < num_ranks; ++r) num_tokens[r] = bf16_inputs[r].num_tokens;
  bf16_inputs.clear();

  // Combine input on rank r: its received rows as BF16 values, with the received weights.
  std::vector<ref::HtRoute> routes(num_ranks);
  std::vector<ref::HtCombineRankInput> combine_inputs(num_ranks);
  for (int r = 0; r < num_ranks; ++r) {
    ref::HtRankOutput& out = bf16_out[r];
    auto& in = combine_inputs[r];
    in.x.resize(out.recv_x.size() / sizeof(uint16_t));
    std::memcpy(in.x.data(), out.recv_x.data(), in.x.size() * sizeof(uint16_t));
    in.topk_weights = out.recv_topk_weights;
    routes[r] = out.route;
    if (r != rank_idx) out = ref::HtRankOutput{};  // free what this rank does not check
  }
  std::vector<ref::HtCombineRankOutput> combined =
      ref::ht_combine(workload.hidden, workload.num_topk, num_tokens, routes, combine_inputs);
  expected.dispatch_bf16 = std::move(bf16_out[rank_idx]);
  expected.combine_out = std::move(combined[rank_idx].out);
  expected.combine_topk_weights = std::move(combined[rank_idx].topk_weights);
  return expected;
}

}  // namespace epcomm::bench
