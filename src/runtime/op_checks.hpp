// Preconditions of each operation, checked on the host before anything is launched. Pure host
// code, covered by CPU tests.
#pragma once

#include "epcomm/types.hpp"

namespace epcomm::checks {

inline constexpr int kMaxTopk = 32;

// Geometry: num_experts > 0 and divisible by num_ranks.
void check_experts(int num_experts, int num_ranks);
// topk_idx: [T, k] int64/int32, contiguous, 1 <= k <= kMaxTopk; num_experts as above.
void check_layout_args(const Tensor& topk_idx, int num_experts, int num_ranks);
// A payload row of `hidden` elements of `dtype` must be a whole number of 16-byte vectors.
void check_hidden(std::int64_t hidden, DType dtype, const char* name);

}  // namespace epcomm::checks
