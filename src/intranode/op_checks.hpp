// Preconditions of each operation, checked on the host before anything is launched. Pure host
// code, covered by CPU tests.
#pragma once

#include "epcomm/dispatch.hpp"
#include "epcomm/size_hints.hpp"
#include "epcomm/types.hpp"

namespace epcomm::checks {

// A low-latency Buffer's workspace holds its low-latency state, which dispatch and combine would
// overwrite: they are refused there (kUnsupported), before anything is launched.
void require_high_throughput_buffer(bool low_latency_buffer, const char* op);

inline constexpr int kMaxTopk = kHtMaxTopk;
// Channels sharing one FP8 scale.
inline constexpr int kFp8ScaleBlock = 128;
// Largest hidden size of a row (in values); far above any model's, far below what the kernels index.
inline constexpr std::int64_t kMaxHidden = std::int64_t{1} << 17;

// Geometry: num_experts > 0 and divisible by num_ranks.
void check_experts(int num_experts, int num_ranks);
// topk_idx: [T, k] int64/int32, contiguous, 1 <= k <= kMaxTopk; num_experts as above.
void check_layout_args(const Tensor& topk_idx, int num_experts, int num_ranks);
// A payload row of `hidden` elements of `dtype` must be a whole number of 16-byte vectors.
void check_hidden(std::int64_t hidden, DType dtype, const char* name);

// The shapes a high-throughput dispatch works with, after its arguments were checked.
struct DispatchShape {
  std::int64_t num_tokens = 0;
  std::int64_t hidden = 0;
  std::int64_t row_bytes = 0;
  int num_scales = 0;  // FP8 scales per row
  int num_topk = 0;    // 0 without topk_idx
  int idx_bytes = 8;
  int num_experts = 0;  // 0 with a handle
  bool fp8 = false;
  bool derive_layout = false;  // no layout tensors: dispatch derives them (DispatchArgs::num_experts)
};
// A dispatch without a handle given none of the layout tensors: it derives them (from topk_idx and
// num_experts, which check_dispatch_args then requires).
inline bool derives_layout(const DispatchArgs& a) {
  return a.handle == nullptr && !a.num_tokens_per_rank.defined() && !a.is_token_in_rank.defined() &&
         !a.num_tokens_per_expert.defined();
}
// Every precondition of Buffer::dispatch that does not need the device.
DispatchShape check_dispatch_args(const DispatchArgs& args, int num_ranks);

struct CombineShape {
  std::int64_t num_tokens = 0;
  std::int64_t hidden = 0;
  int num_topk = 0;  // 0 without topk_weights
};
CombineShape check_combine_args(const CombineArgs& args, int num_ranks);

// No input of the operation may lie in [region, region + region_bytes), the Buffer's NVLink
// region, which the operation overwrites (zero-copy dispatch outputs live there).
void check_inputs_outside_region(const DispatchArgs& args, const void* region, std::size_t region_bytes);
void check_inputs_outside_region(const CombineArgs& args, const void* region, std::size_t region_bytes);

}  // namespace epcomm::checks
