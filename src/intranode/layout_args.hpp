// Arguments of the dispatch-layout kernel (SPEC "Layout"). Plain data shared by host and device.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/device_status.hpp"
#include "core/domain_view.hpp"
#include "core/fast_divisor.hpp"
#include "epcomm/types.hpp"

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
  // Divisions by the shape, set by the launchers from the fields above (with_divisors): a 32-bit
  // division is ~20 instructions, and each of the layout blocks' threads took three (bench/NOTES.md 11.57).
  int num_domains = 0;            // num_ranks / ranks_per_domain
  FastDivisor rank_of_expert{1};  // by num_experts / num_ranks
  FastDivisor domain_of_rank{1};  // by ranks_per_domain
};
static_assert(std::is_trivially_copyable_v<LayoutArgs>);

// The inputs of one layout of `topk_idx` (checked by the caller) on a Buffer of `num_ranks` ranks in
// domains of `ranks_per_domain`, whose view is `v`; the count and flag outputs are the caller's to set.
inline LayoutArgs layout_inputs(const Tensor& topk_idx, int num_experts, int num_ranks, int ranks_per_domain,
                                const DomainView& v) {
  LayoutArgs l;
  l.topk_idx = topk_idx.data;
  l.topk_is_int32 = topk_idx.dtype == DType::kI32;
  l.num_tokens = topk_idx.size(0);
  l.num_topk = static_cast<int>(topk_idx.size(1));
  l.num_experts = num_experts;
  l.num_ranks = num_ranks;
  l.ranks_per_domain = ranks_per_domain;
  l.rank = v.rank;
  l.status = v.status;
  l.masked = v.masked;
  return l;
}

// `args` with its divisions by the shape set (the launchers call it: the caller need not).
inline LayoutArgs with_divisors(LayoutArgs args) {
  args.num_domains = args.num_ranks / std::max(args.ranks_per_domain, 1);
  args.rank_of_expert = FastDivisor(std::max(args.num_experts / std::max(args.num_ranks, 1), 1));
  args.domain_of_rank = FastDivisor(std::max(args.ranks_per_domain, 1));
  return args;
}

// Launches the kernel on `stream`; the three count arrays must be zero by then (the caller clears
// them, one memset when they share an allocation).
void launch_dispatch_layout(const LayoutArgs& args, void* stream);

}  // namespace epcomm
