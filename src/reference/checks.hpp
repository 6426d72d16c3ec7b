// Input checks shared by the reference modes (internal to src/reference). Each throws
// epcomm::Error (invalid argument) with a message that names the argument, what was expected and
// what was given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/check.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::ref::detail {

// The name of a per-rank field in messages, e.g. field("inputs", 3, "topk_idx") is
// "inputs[3].topk_idx".
inline std::string field(const char* array, size_t index, const char* member) {
  return epcomm::detail::concat(array, "[", index, "].", member);
}

// A vector holds exactly the entries its declared shape implies. `shape` spells the shape for the
// message, e.g. "[num_tokens, num_topk] = [3, 2]".
inline void check_size(const std::string& name, size_t actual, int64_t expected, const std::string& shape) {
  EPCOMM_CHECK_ARG(static_cast<int64_t>(actual) == expected, name, ": expected ", shape, " = ", expected,
                   " entries, got ", actual);
}

// topk_idx is [num_tokens, num_topk] row-major with every entry in [-1, num_experts) (SPEC
// "Layout": -1 is an empty slot, anything else outside [0, E) is an error).
inline void check_topk_idx(const std::string& name, const std::vector<int64_t>& topk_idx, int64_t num_tokens,
                           int num_topk, int num_experts) {
  EPCOMM_CHECK_ARG(num_tokens >= 0, name, ": expected num_tokens >= 0, got ", num_tokens);
  EPCOMM_CHECK_ARG(num_topk > 0, name, ": expected num_topk > 0, got ", num_topk);
  check_size(name, topk_idx.size(), num_tokens * num_topk,
             epcomm::detail::concat("[num_tokens, num_topk] = [", num_tokens, ", ", num_topk, "]"));
  for (size_t i = 0; i < topk_idx.size(); ++i) {
    const int64_t expert_idx = topk_idx[i];
    EPCOMM_CHECK_ARG(expert_idx >= -1 && expert_idx < num_experts, name, ": expected entries in [-1, ",
                     num_experts, ") (-1 or an expert of num_experts=", num_experts, "), got ", expert_idx,
                     " at [token ", i / num_topk, ", slot ", i % num_topk, "]");
  }
}

// A route (from ht_dispatch) names, for every received row, a valid (source rank, source token)
// pair, and lists them in strictly increasing (rank, token) order: the SPEC's order of received
// rows, which also means no token is received twice by one rank. num_tokens[s]: tokens of rank s.
inline void check_route(const std::string& name, const HtRoute& route,
                        const std::vector<int64_t>& num_tokens) {
  EPCOMM_CHECK_ARG(route.src_rank.size() == route.src_token.size(), name,
                   ": expected src_rank and src_token of equal length, got ", route.src_rank.size(), " and ",
                   route.src_token.size());
  const int64_t num_ranks = static_cast<int64_t>(num_tokens.size());
  for (size_t row = 0; row < route.src_rank.size(); ++row) {
    const int32_t rank_idx = route.src_rank[row];
    const int32_t token_idx = route.src_token[row];
    EPCOMM_CHECK_ARG(rank_idx >= 0 && rank_idx < num_ranks, name, ".src_rank: expected entries in [0, ",
                     num_ranks, "), got ", rank_idx, " at row ", row);
    EPCOMM_CHECK_ARG(token_idx >= 0 && token_idx < num_tokens[rank_idx], name,
                     ".src_token: expected entries in [0, num_tokens of rank ", rank_idx, " = ",
                     num_tokens[rank_idx], "), got ", token_idx, " at row ", row);
    if (row > 0) {
      const int32_t prev_rank = route.src_rank[row - 1];
      const int32_t prev_token = route.src_token[row - 1];
      EPCOMM_CHECK_ARG(prev_rank < rank_idx || (prev_rank == rank_idx && prev_token < token_idx), name,
                       ": expected rows in strictly increasing (src_rank, src_token) order, got (", prev_rank,
                       ", ", prev_token, ") then (", rank_idx, ", ", token_idx, ") at row ", row);
    }
  }
}

// Rounds count up to a multiple of alignment (>= 1).
inline int32_t align_up(int32_t count, int alignment) {
  return (count + alignment - 1) / alignment * alignment;
}

}  // namespace epcomm::ref::detail
