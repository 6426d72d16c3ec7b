// High-throughput dispatch and cached dispatch (SPEC "High-throughput dispatch").
#include <cstdint>
#include <cstring>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

namespace {

using detail::field;
using epcomm::detail::concat;

// Scale (token, block) of a rank's strided scale tensor.
float scale_at(const HtRankInput& input, int64_t token_idx, int block) {
  return input.scales[token_idx * input.scale_stride_token + block * input.scale_stride_block];
}

// Every rank's input is well formed and the ranks agree on num_topk, row_bytes and num_scales
// (every rank's outputs share those widths).
void check_inputs(const Geometry& geometry, const std::vector<HtRankInput>& inputs,
                  const HtDispatchOptions& options) {
  EPCOMM_CHECK_ARG(static_cast<int64_t>(inputs.size()) == geometry.num_ranks,
                   "inputs: expected one per rank (num_ranks=", geometry.num_ranks, "), got ", inputs.size());
  EPCOMM_CHECK_ARG(options.expert_alignment >= 1, "expert_alignment: expected >= 1, got ",
                   options.expert_alignment);
  EPCOMM_CHECK_ARG(options.num_worst_tokens >= 0, "num_worst_tokens: expected >= 0 (0 = off), got ",
                   options.num_worst_tokens);
  const HtRankInput& first = inputs[0];
  for (size_t rank_idx = 0; rank_idx < inputs.size(); ++rank_idx) {
    const HtRankInput& in = inputs[rank_idx];
    EPCOMM_CHECK_ARG(in.num_topk == first.num_topk, field("inputs", rank_idx, "num_topk"),
                     ": expected the same on every rank (", first.num_topk, " on rank 0), got ", in.num_topk);
    EPCOMM_CHECK_ARG(in.row_bytes > 0 && in.row_bytes == first.row_bytes,
                     field("inputs", rank_idx, "row_bytes"), ": expected > 0 and the same on every rank (",
                     first.row_bytes, " on rank 0), got ", in.row_bytes);
    EPCOMM_CHECK_ARG(in.num_scales >= 0 && in.num_scales == first.num_scales,
                     field("inputs", rank_idx, "num_scales"), ": expected >= 0 and the same on every rank (",
                     first.num_scales, " on rank 0), got ", in.num_scales);
    detail::check_topk_idx(field("inputs", rank_idx, "topk_idx"), in.topk_idx, in.num_tokens, in.num_topk,
                           geometry.num_experts);
    if (options.with_topk) {
      detail::check_size(field("inputs", rank_idx, "topk_weights"), in.topk_weights.size(),
                         in.num_tokens * in.num_topk,
                         concat("[num_tokens, num_topk] = [", in.num_tokens, ", ", in.num_topk, "]"));
    }
    detail::check_size(field("inputs", rank_idx, "x"), in.x.size(), in.num_tokens * in.row_bytes,
                       concat("[num_tokens, row_bytes] = [", in.num_tokens, ", ", in.row_bytes, "]"));
    if (in.num_scales > 0 && in.num_tokens > 0) {
      EPCOMM_CHECK_ARG(in.scale_stride_token >= 0 && in.scale_stride_block >= 0,
                       field("inputs", rank_idx, "scale_stride_token/scale_stride_block"),
                       ": expected non-negative strides, got (", in.scale_stride_token, ", ",
                       in.scale_stride_block, ")");
      const int64_t last = (in.num_tokens - 1) * in.scale_stride_token +
                           static_cast<int64_t>(in.num_scales - 1) * in.scale_stride_block;
      EPCOMM_CHECK_ARG(last < static_cast<int64_t>(in.scales.size()), field("inputs", rank_idx, "scales"),
                       ": expected more than ", last, " entries (the last scale of [", in.num_tokens, ", ",
                       in.num_scales, "] with strides (", in.scale_stride_token, ", ", in.scale_stride_block,
                       ")), got ", in.scales.size());
    }
  }
}

// Whether token token_idx of `input` selects at least one expert living on rank_idx.
bool reaches_rank(const Geometry& geometry, const HtRankInput& input, int64_t token_idx, int rank_idx) {
  for (int slot = 0; slot < input.num_topk; ++slot) {
    const int64_t expert_idx = input.topk_idx[token_idx * input.num_topk + slot];
    if (expert_idx >= 0 && geometry.rank_of_expert(expert_idx) == rank_idx) return true;
  }
  return false;
}

// The received rows of rank dst_rank: a token is sent once to every rank holding at least one of
// its experts, rows ordered by source rank, then by the token's index on its source rank.
HtRoute route_to(const Geometry& geometry, const std::vector<HtRankInput>& inputs, int dst_rank) {
  HtRoute route;
  for (int src_rank = 0; src_rank < geometry.num_ranks; ++src_rank) {
    for (int64_t token_idx = 0; token_idx < inputs[src_rank].num_tokens; ++token_idx) {
      if (!reaches_rank(geometry, inputs[src_rank], token_idx, dst_rank)) continue;
      route.src_rank.push_back(src_rank);
      route.src_token.push_back(static_cast<int32_t>(token_idx));
    }
  }
  return route;
}

// Fills every output of rank dst_rank for its route.
HtRankOutput dispatch_to(const Geometry& geometry, const std::vector<HtRankInput>& inputs,
                         const HtDispatchOptions& options, int dst_rank) {
  const int num_topk = inputs[0].num_topk;
  const int64_t row_bytes = inputs[0].row_bytes;
  const int num_scales = inputs[0].num_scales;
  const int num_local_experts = geometry.num_local_experts();

  HtRankOutput out;
  out.route = route_to(geometry, inputs, dst_rank);
  out.num_recv_tokens = static_cast<int64_t>(out.route.src_rank.size());
  if (options.num_worst_tokens > 0) {
    // Worst-case mode: every output has num_worst_tokens rows; the real count must fit.
    EPCOMM_CHECK_ARG(out.num_recv_tokens <= options.num_worst_tokens,
                     "num_worst_tokens: expected >= the rows every rank receives, got ",
                     options.num_worst_tokens, " while rank ", dst_rank, " receives ", out.num_recv_tokens);
    out.num_rows = options.num_worst_tokens;
  } else {
    out.num_rows = out.num_recv_tokens;
  }

  // Padding rows (worst-case mode): zero payload and scales, recv_topk_idx -1, weight 0.
  out.recv_x.assign(out.num_rows * row_bytes, 0);
  out.recv_scales.assign(out.num_rows * num_scales, 0.0f);
  if (options.with_topk) {
    out.recv_topk_idx.assign(out.num_rows * num_topk, -1);
    out.recv_topk_weights.assign(out.num_rows * num_topk, 0.0f);
  }
  out.num_recv_tokens_per_expert.assign(num_local_experts, 0);

  for (int64_t row = 0; row < out.num_recv_tokens; ++row) {
    const HtRankInput& in = inputs[out.route.src_rank[row]];
    const int64_t token_idx = out.route.src_token[row];
    std::memcpy(out.recv_x.data() + row * row_bytes, in.x.data() + token_idx * row_bytes, row_bytes);
    // Scales travel unchanged; output scales are row-major [num_rows, num_scales].
    for (int block = 0; block < num_scales; ++block) {
      out.recv_scales[row * num_scales + block] = scale_at(in, token_idx, block);
    }
    for (int slot = 0; slot < num_topk; ++slot) {
      const int64_t expert_idx = in.topk_idx[token_idx * num_topk + slot];
      const bool local = expert_idx >= 0 && geometry.rank_of_expert(expert_idx) == dst_rank;
      // Every selection of a local expert counts (a token naming it in two slots counts twice).
      if (local) ++out.num_recv_tokens_per_expert[expert_idx % num_local_experts];
      if (!options.with_topk) continue;
      // recv_topk_idx: the local id on this rank, or -1 for an expert elsewhere; weight 0 there.
      out.recv_topk_idx[row * num_topk + slot] = local ? expert_idx % num_local_experts : -1;
      out.recv_topk_weights[row * num_topk + slot] =
          local ? in.topk_weights[token_idx * num_topk + slot] : 0.0f;
    }
  }
  // Counts, never rows, are rounded up to expert_alignment.
  for (int32_t& count : out.num_recv_tokens_per_expert)
    count = detail::align_up(count, options.expert_alignment);
  return out;
}

}  // namespace

std::vector<HtRankOutput> ht_dispatch(const Geometry& geometry, const std::vector<HtRankInput>& inputs,
                                      const HtDispatchOptions& options) {
  geometry.validate();
  check_inputs(geometry, inputs, options);
  std::vector<HtRankOutput> outputs;
  outputs.reserve(geometry.num_ranks);
  for (int dst_rank = 0; dst_rank < geometry.num_ranks; ++dst_rank) {
    outputs.push_back(dispatch_to(geometry, inputs, options, dst_rank));
  }
  return outputs;
}

// SPEC "Cached dispatch": the routes of an earlier dispatch, new payloads. Only x and row_bytes of
// the inputs are read (and num_tokens to check the routes).
std::vector<std::vector<uint8_t>> ht_dispatch_cached(const std::vector<HtRoute>& routes,
                                                     const std::vector<HtRankInput>& inputs) {
  EPCOMM_CHECK_ARG(!inputs.empty(), "inputs: expected one per rank, got none");
  EPCOMM_CHECK_ARG(routes.size() == inputs.size(), "routes: expected one per rank (", inputs.size(),
                   " inputs), got ", routes.size());
  const int64_t row_bytes = inputs[0].row_bytes;
  std::vector<int64_t> num_tokens;
  for (size_t rank_idx = 0; rank_idx < inputs.size(); ++rank_idx) {
    const HtRankInput& in = inputs[rank_idx];
    EPCOMM_CHECK_ARG(in.row_bytes > 0 && in.row_bytes == row_bytes, field("inputs", rank_idx, "row_bytes"),
                     ": expected > 0 and the same on every rank (", row_bytes, " on rank 0), got ",
                     in.row_bytes);
    EPCOMM_CHECK_ARG(in.num_tokens >= 0, field("inputs", rank_idx, "num_tokens"), ": expected >= 0, got ",
                     in.num_tokens);
    detail::check_size(field("inputs", rank_idx, "x"), in.x.size(), in.num_tokens * row_bytes,
                       concat("[num_tokens, row_bytes] = [", in.num_tokens, ", ", row_bytes, "]"));
    num_tokens.push_back(in.num_tokens);
  }
  std::vector<std::vector<uint8_t>> recv_x(routes.size());
  for (size_t dst_rank = 0; dst_rank < routes.size(); ++dst_rank) {
    const HtRoute& route = routes[dst_rank];
    detail::check_route(concat("routes[", dst_rank, "]"), route, num_tokens);
    recv_x[dst_rank].resize(route.src_rank.size() * row_bytes);
    for (size_t row = 0; row < route.src_rank.size(); ++row) {
      const HtRankInput& in = inputs[route.src_rank[row]];
      std::memcpy(recv_x[dst_rank].data() + row * row_bytes, in.x.data() + route.src_token[row] * row_bytes,
                  row_bytes);
    }
  }
  return recv_x;
}

}  // namespace epcomm::ref
