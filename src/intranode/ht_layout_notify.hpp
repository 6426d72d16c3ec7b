// The fused preamble of a dispatch given topk_idx alone: layout's blocks and notify in one launch
// (ht_layout_notify.cu).
#pragma once

#include <cstddef>
#include <cstdint>

#include "intranode/ht_args.hpp"
#include "intranode/layout_args.hpp"

namespace epcomm {

// The fused launch's name among the Buffer's kernel times (EPCOMM_KERNEL_TIMING).
inline constexpr const char* kFusedPreambleTimerName = "layout-notify";

// Experts the fused launch's scratch counts hold (Buffer::Impl::preamble_scratch).
inline constexpr int kFusedLayoutMaxExperts = 8192;

// The fused launch takes one domain of at most 64 ranks, at most kFusedLayoutMaxExperts experts and
// 32 top-k slots; a dispatch outside these runs get_dispatch_layout's kernel before notify.
bool can_fuse_layout_notify(int num_ranks, int ranks_per_domain, int num_experts, int num_topk);

// The fused launch's counters in the Buffer's scratch (after the expert counts); zero between
// calls, and left zero.
struct FusedScratch {
  unsigned* arrivals = nullptr;                          // blocks done with their layout part
  unsigned long long* first_entry_complement = nullptr;  // traced calls: ~(first block's start)
};
// Bytes of the Buffer's scratch: the expert counts, the arrivals (and a pad), the first entry.
inline constexpr std::size_t kFusedScratchBytes = sizeof(std::int32_t) * (kFusedLayoutMaxExperts + 2) + 8;

// `layout`'s count outputs: num_tokens_per_expert is the scratch (zero, and left zero: notify
// clears it, notify.clear_counts), the rank and domain counts none.
void launch_ht_layout_notify(const LayoutArgs& layout, const HtNotifyArgs& notify,
                             const FusedScratch& scratch, void* stream);

}  // namespace epcomm
