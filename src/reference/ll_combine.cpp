// Low-latency combine (SPEC "Low-latency combine"): the weighted sum of each token's expert rows.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

namespace {

using detail::field;
using epcomm::detail::concat;

void check_inputs(const Geometry& geometry, int64_t hidden, const std::vector<LlRankOutput>& dispatch,
                  const std::vector<std::vector<uint16_t>>& y, const std::vector<LlRankInput>& inputs,
                  const std::vector<std::vector<float>>& topk_weights) {
  const size_t num_ranks = static_cast<size_t>(geometry.num_ranks);
  const int64_t num_local_experts = geometry.num_local_experts();
  EPCOMM_CHECK_ARG(hidden > 0, "hidden: expected > 0, got ", hidden);
  EPCOMM_CHECK_ARG(dispatch.size() == num_ranks, "dispatch: expected one per rank (num_ranks=", num_ranks,
                   "), got ", dispatch.size());
  EPCOMM_CHECK_ARG(y.size() == num_ranks, "y: expected one per rank (num_ranks=", num_ranks, "), got ",
                   y.size());
  EPCOMM_CHECK_ARG(inputs.size() == num_ranks, "inputs: expected one per rank (num_ranks=", num_ranks,
                   "), got ", inputs.size());
  EPCOMM_CHECK_ARG(topk_weights.size() == num_ranks,
                   "topk_weights: expected one per rank (num_ranks=", num_ranks, "), got ",
                   topk_weights.size());
  for (size_t rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
    const LlRankOutput& handle = dispatch[rank_idx];
    const int64_t capacity = handle.capacity;
    EPCOMM_CHECK_ARG(capacity > 0 && capacity == dispatch[0].capacity,
                     field("dispatch", rank_idx, "capacity"), ": expected > 0 and the same on every rank (",
                     dispatch[0].capacity, " on rank 0), got ", capacity);
    detail::check_size(field("dispatch", rank_idx, "layout_range"), handle.layout_range.size(),
                       num_local_experts * static_cast<int64_t>(num_ranks),
                       concat("[nle, num_ranks] = [", num_local_experts, ", ", num_ranks, "]"));
    detail::check_size(field("dispatch", rank_idx, "src_info"), handle.src_info.size(),
                       num_local_experts * capacity,
                       concat("[nle, capacity] = [", num_local_experts, ", ", capacity, "]"));
    detail::check_size(
        concat("y[", rank_idx, "]"), y[rank_idx].size(), num_local_experts * capacity * hidden,
        concat("[nle, capacity, hidden] = [", num_local_experts, ", ", capacity, ", ", hidden, "]"));
    const LlRankInput& in = inputs[rank_idx];
    detail::check_topk_idx(field("inputs", rank_idx, "topk_idx"), in.topk_idx, in.num_tokens, in.num_topk,
                           geometry.num_experts);
    detail::check_size(concat("topk_weights[", rank_idx, "]"), topk_weights[rank_idx].size(),
                       in.num_tokens * in.num_topk,
                       concat("[num_tokens, num_topk] = [", in.num_tokens, ", ", in.num_topk, "]"));
  }
}

// The row of (src_rank, token_idx) in expert expert_idx's receive slots on its rank: the
// `occurrence`-th row (0-based) of src_rank's range whose src_info is token_idx. A token naming
// the expert in several slots has that many rows, matched to its slots in ascending slot order.
int64_t find_row(const Geometry& geometry, const std::vector<LlRankOutput>& dispatch, int src_rank,
                 int64_t token_idx, int64_t expert_idx, int occurrence) {
  const int dst_rank = geometry.rank_of_expert(expert_idx);
  const int64_t local_expert = expert_idx % geometry.num_local_experts();
  const LlRankOutput& handle = dispatch[dst_rank];
  const int64_t range = handle.layout_range[local_expert * geometry.num_ranks + src_rank];
  const int64_t begin = range >> 32;
  const int64_t count = range & 0xffffffffLL;
  EPCOMM_CHECK_ARG(begin >= 0 && begin + count <= handle.capacity,
                   field("dispatch", dst_rank, "layout_range"),
                   ": expected rows within capacity=", handle.capacity, " for expert ", expert_idx,
                   " and source rank ", src_rank, ", got begin=", begin, " count=", count);
  for (int64_t row = begin; row < begin + count; ++row) {
    if (handle.src_info[local_expert * handle.capacity + row] != token_idx) continue;
    if (occurrence-- == 0) return row;
  }
  EPCOMM_THROW(ErrorCategory::kInvalidArgument, field("dispatch", dst_rank, "src_info"),
               ": expected a row of token ", token_idx, " of rank ", src_rank, " for expert ", expert_idx,
               " (layout_range and src_info must match inputs[", src_rank, "].topk_idx), found none");
}

}  // namespace

std::vector<std::vector<uint16_t>> ll_combine(const Geometry& geometry, int64_t hidden,
                                              const std::vector<LlRankOutput>& dispatch,
                                              const std::vector<std::vector<uint16_t>>& y,
                                              const std::vector<LlRankInput>& inputs,
                                              const std::vector<std::vector<float>>& topk_weights) {
  geometry.validate();
  check_inputs(geometry, hidden, dispatch, y, inputs, topk_weights);
  const int64_t num_local_experts = geometry.num_local_experts();
  std::vector<std::vector<uint16_t>> outputs(geometry.num_ranks);
  std::vector<float> acc(hidden), partial(hidden);
  for (int src_rank = 0; src_rank < geometry.num_ranks; ++src_rank) {
    const LlRankInput& in = inputs[src_rank];
    outputs[src_rank].resize(in.num_tokens * hidden);
    for (int64_t token_idx = 0; token_idx < in.num_tokens; ++token_idx) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      const int64_t* experts = in.topk_idx.data() + token_idx * in.num_topk;
      // out[t] = sum over the ranks holding t's experts (ascending) of that rank's partial: the sum
      // over t's slots k (ascending) with an expert there of w[t,k] * y_e[row of t], each term
      // rounded to float and added in float32 from 0; the partials are added in float32 from 0.
      for (int dst_rank = 0; dst_rank < geometry.num_ranks; ++dst_rank) {
        bool held = false;
        std::fill(partial.begin(), partial.end(), 0.0f);
        for (int slot = 0; slot < in.num_topk; ++slot) {
          const int64_t expert_idx = experts[slot];
          if (expert_idx < 0 || geometry.rank_of_expert(expert_idx) != dst_rank) continue;
          held = true;
          const int occurrence = static_cast<int>(std::count(experts, experts + slot, expert_idx));
          const int64_t row = find_row(geometry, dispatch, src_rank, token_idx, expert_idx, occurrence);
          const int64_t local_expert = expert_idx % num_local_experts;
          const uint16_t* y_row =
              y[dst_rank].data() + (local_expert * dispatch[dst_rank].capacity + row) * hidden;
          const float weight = topk_weights[src_rank][token_idx * in.num_topk + slot];
          for (int64_t h = 0; h < hidden; ++h) {
            const float term = weight * bf16_to_float(y_row[h]);
            partial[h] += term;
          }
        }
        if (!held) continue;
        for (int64_t h = 0; h < hidden; ++h) acc[h] += partial[h];
      }
      // One BF16 rounding per element; a token with no expert comes out as zeros.
      for (int64_t h = 0; h < hidden; ++h) outputs[src_rank][token_idx * hidden + h] = float_to_bf16(acc[h]);
    }
  }
  return outputs;
}

}  // namespace epcomm::ref
