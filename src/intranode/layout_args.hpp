// Arguments of the dispatch-layout kernel (SPEC "Layout"). Plain data shared by host and device.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/device_status.hpp"

namespace epcomm {

struct LayoutArgs {
  const void* topk_idx = nullptr;  // [num_tokens, num_topk], int64 or int32
  bool topk_is_int32 = false;
  std::int64_t num_tokens = 0;
  int num_topk = 0;
  int num_experts = 0;
  int num_ranks = 0;
  int ranks_per_domain = 0;
  int rank = 0;                                   // reported with an invalid index
  std::int32_t* num_tokens_per_rank = nullptr;    // [num_ranks], zeroed before launch
  std::int32_t* num_tokens_per_domain = nullptr;  // [num_ranks / ranks_per_domain], zeroed
  std::int32_t* num_tokens_per_expert = nullptr;  // [num_experts], zeroed
  bool* is_token_in_rank = nullptr;               // [num_tokens, num_ranks], fully written
  DeviceStatus* status = nullptr;
  const std::uint8_t* masked = nullptr;  // [num_ranks]: 1 where a rank is masked (its experts count as -1)
};
static_assert(std::is_trivially_copyable_v<LayoutArgs>);

// Launches the kernel on `stream`; the three count arrays must be zero by then (the caller clears
// them, one memset when they share an allocation).
void launch_dispatch_layout(const LayoutArgs& args, void* stream);

}  // namespace epcomm
