// High-throughput combine (SPEC "High-throughput combine"): the reverse of ht_dispatch.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

namespace {

using detail::field;
using epcomm::detail::concat;

// Whether the combine carries weight rows: some rank gave them.
bool has_weights(const std::vector<HtCombineRankInput>& inputs) {
  for (const HtCombineRankInput& in : inputs) {
    if (!in.topk_weights.empty()) return true;
  }
  return false;
}

void check_inputs(int64_t hidden, int num_topk, const std::vector<int64_t>& num_tokens,
                  const std::vector<HtRoute>& routes, const std::vector<HtCombineRankInput>& inputs) {
  EPCOMM_CHECK_ARG(hidden > 0, "hidden: expected > 0, got ", hidden);
  EPCOMM_CHECK_ARG(num_topk >= 0, "num_topk: expected >= 0, got ", num_topk);
  EPCOMM_CHECK_ARG(!num_tokens.empty(), "num_tokens: expected one per rank, got none");
  const size_t num_ranks = num_tokens.size();
  EPCOMM_CHECK_ARG(routes.size() == num_ranks, "routes: expected one per rank (num_tokens has ", num_ranks,
                   "), got ", routes.size());
  EPCOMM_CHECK_ARG(inputs.size() == num_ranks, "inputs: expected one per rank (num_tokens has ", num_ranks,
                   "), got ", inputs.size());
  const bool with_weights = has_weights(inputs);
  EPCOMM_CHECK_ARG(!with_weights || num_topk > 0, "num_topk: expected > 0 when topk_weights are given, got ",
                   num_topk);
  for (size_t rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
    EPCOMM_CHECK_ARG(num_tokens[rank_idx] >= 0, "num_tokens[", rank_idx, "]: expected >= 0, got ",
                     num_tokens[rank_idx]);
  }
  for (size_t rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
    const HtCombineRankInput& in = inputs[rank_idx];
    detail::check_route(concat("routes[", rank_idx, "]"), routes[rank_idx], num_tokens);
    const int64_t num_recv = static_cast<int64_t>(routes[rank_idx].src_rank.size());
    // Rows beyond num_recv (the padding of worst-case mode) are allowed and ignored.
    const int64_t x_size = static_cast<int64_t>(in.x.size());
    EPCOMM_CHECK_ARG(x_size % hidden == 0 && x_size / hidden >= num_recv, field("inputs", rank_idx, "x"),
                     ": expected [rows, hidden=", hidden, "] with rows >= the ", num_recv,
                     " received rows of the route, got ", x_size, " entries");
    if (with_weights) {
      const int64_t w_size = static_cast<int64_t>(in.topk_weights.size());
      EPCOMM_CHECK_ARG(w_size % num_topk == 0 && w_size / num_topk >= num_recv,
                       field("inputs", rank_idx, "topk_weights"), ": expected [rows, num_topk=", num_topk,
                       "] with rows >= the ", num_recv,
                       " received rows of the route (given on some rank), got ", w_size, " entries");
    }
    const int64_t bias_size = num_tokens[rank_idx] * hidden;
    const std::string bias_shape =
        concat("empty or [num_tokens, hidden] = [", num_tokens[rank_idx], ", ", hidden, "]");
    EPCOMM_CHECK_ARG(in.bias0.empty() || static_cast<int64_t>(in.bias0.size()) == bias_size,
                     field("inputs", rank_idx, "bias0"), ": expected ", bias_shape, ", got ", in.bias0.size(),
                     " entries");
    EPCOMM_CHECK_ARG(in.bias1.empty() || static_cast<int64_t>(in.bias1.size()) == bias_size,
                     field("inputs", rank_idx, "bias1"), ": expected ", bias_shape, ", got ", in.bias1.size(),
                     " entries");
  }
}

}  // namespace

std::vector<HtCombineRankOutput> ht_combine(int64_t hidden, int num_topk,
                                            const std::vector<int64_t>& num_tokens,
                                            const std::vector<HtRoute>& routes,
                                            const std::vector<HtCombineRankInput>& inputs) {
  check_inputs(hidden, num_topk, num_tokens, routes, inputs);
  const size_t num_ranks = num_tokens.size();
  const bool with_weights = has_weights(inputs);

  // acc[s]: [num_tokens[s], hidden] float32 sums of rank s's tokens; it starts as bias0 + bias1
  // (zeros without biases), so a token no rank received comes out as its biases.
  std::vector<std::vector<float>> acc(num_ranks);
  std::vector<std::vector<float>> weight_acc(num_ranks);
  for (size_t rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
    const HtCombineRankInput& in = inputs[rank_idx];
    acc[rank_idx].assign(num_tokens[rank_idx] * hidden, 0.0f);
    for (size_t i = 0; i < acc[rank_idx].size(); ++i) {
      if (!in.bias0.empty()) acc[rank_idx][i] += bf16_to_float(in.bias0[i]);
      if (!in.bias1.empty()) acc[rank_idx][i] += bf16_to_float(in.bias1[i]);
    }
    if (with_weights) weight_acc[rank_idx].assign(num_tokens[rank_idx] * num_topk, 0.0f);
  }

  // Add the received rows back into their tokens, the ranks r that received them in ascending
  // order (the outer loop), in float32. Unweighted: the expert side applied the weights. Weight rows
  // are summed over the same ranks; dispatch zeroed the non-local entries, so this restores them.
  for (size_t recv_rank = 0; recv_rank < num_ranks; ++recv_rank) {
    const HtRoute& route = routes[recv_rank];
    const HtCombineRankInput& in = inputs[recv_rank];
    for (size_t row = 0; row < route.src_rank.size(); ++row) {
      const int32_t src_rank = route.src_rank[row];
      const int64_t token_idx = route.src_token[row];
      float* dst = acc[src_rank].data() + token_idx * hidden;
      const uint16_t* src = in.x.data() + row * hidden;
      for (int64_t h = 0; h < hidden; ++h) dst[h] += bf16_to_float(src[h]);
      if (!with_weights) continue;
      for (int slot = 0; slot < num_topk; ++slot) {
        weight_acc[src_rank][token_idx * num_topk + slot] += in.topk_weights[row * num_topk + slot];
      }
    }
  }

  // One BF16 rounding per element.
  std::vector<HtCombineRankOutput> outputs(num_ranks);
  for (size_t rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
    outputs[rank_idx].out.resize(acc[rank_idx].size());
    for (size_t i = 0; i < acc[rank_idx].size(); ++i)
      outputs[rank_idx].out[i] = float_to_bf16(acc[rank_idx][i]);
    outputs[rank_idx].topk_weights = std::move(weight_acc[rank_idx]);
  }
  return outputs;
}

}  // namespace epcomm::ref
