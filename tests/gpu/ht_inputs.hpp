// Inputs of the high-throughput GPU tests: every rank can make any rank's inputs (fixed seeds),
// so each computes the CPU reference of all ranks and checks its own outputs against it.
#pragma once

#include <cstdint>
#include <vector>

#include "epcomm/buffer.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::test {

struct HtCase {
  std::int64_t num_tokens = 512;
  std::int64_t tokens_on_rank1 = -1;  // >= 0: rank 1 has this many tokens instead
  std::int64_t hidden = 7168;
  int num_topk = 8;
  int experts_per_rank = 128;
  bool fp8 = false;
  bool with_topk = true;
  bool skew = false;            // 30% of tokens pinned to rank 0's experts
  double empty_fraction = 0.1;  // top-k slots set to -1
  bool idx32 = false;
  bool col_major_scales = true;
  int expert_alignment = 1;
  int num_sms = 24;
  bool worst_case = false;  // num_worst_tokens = num_tokens * R (every token could arrive)
  bool biases = true;
  std::uint64_t seed = 1;

  std::int64_t tokens_of(int rank) const {
    return rank == 1 && tokens_on_rank1 >= 0 ? tokens_on_rank1 : num_tokens;
  }
};

// Rank `rank`'s dispatch input. Token 3 (when present) selects no expert at all.
ref::HtRankInput make_ht_input(const HtCase& c, int rank, int num_ranks, std::uint64_t salt = 0);
// A plain dispatch's arguments: the inputs and the layout get_dispatch_layout made of them.
inline DispatchArgs dispatch_args(const Tensor& x, const Tensor& topk, const Tensor& weights,
                                  const DispatchLayout& layout) {
  DispatchArgs args;
  args.x = x;
  args.topk_idx = topk;
  args.topk_weights = weights;
  args.num_tokens_per_rank = layout.num_tokens_per_rank;
  args.is_token_in_rank = layout.is_token_in_rank;
  args.num_tokens_per_expert = layout.num_tokens_per_expert;
  return args;
}

// Random BF16 values (never all zero), deterministic in (seed, count).
std::vector<std::uint16_t> random_bf16(std::uint64_t seed, std::size_t count);

}  // namespace epcomm::test
