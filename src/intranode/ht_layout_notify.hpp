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

// Blocks the fused launch may have (each publishes its rows to each of up to 64 ranks in the scratch).
inline constexpr int kFusedMaxBlocks = 2048;
inline constexpr int kFusedMaxRanks = 64;

// The fused launch's blocks for `num_tokens` tokens of `num_topk` slots: a thread a slot, 8 or 32 a
// token, 1,024 a block; at least one (with no tokens, notify still exchanges empty counts).
std::int64_t fused_layout_blocks(std::int64_t num_tokens, int num_topk);

// The fused launch takes one domain of at most 64 ranks, at most kFusedLayoutMaxExperts experts, 32
// top-k slots and kFusedMaxBlocks blocks (262,144 tokens of up to 8 slots, 65,536 of more); a
// dispatch outside these runs get_dispatch_layout's kernel before notify.
bool can_fuse_layout_notify(int num_ranks, int ranks_per_domain, int num_experts, int num_topk,
                            std::int64_t num_tokens);

// The fused launch's counters and board in the Buffer's scratch (after the expert counts). The
// counters are zero between calls, and left zero; the board's words carry their call's tag.
struct FusedScratch {
  unsigned* arrivals = nullptr;                          // blocks done with their layout part
  unsigned* tickets = nullptr;                           // blocks started (a block's tokens go by it)
  unsigned long long* first_entry_complement = nullptr;  // traced calls: ~(first block's start)
  unsigned long long* last_past = nullptr;  // traced calls: [kFusedTracePhases], the last block past each
  std::uint64_t* block_rows = nullptr;                   // [kFusedMaxBlocks][kFusedMaxRanks] (fused_scan.cuh)
};
// Bytes of the Buffer's scratch: the expert counts, the arrivals and the tickets, the first entry,
// the last past each phase, the board.
inline constexpr std::size_t kFusedScratchBytes = sizeof(std::int32_t) * (kFusedLayoutMaxExperts + 2) +
                                                  8 * (1 + kFusedTracePhases) +
                                                  sizeof(std::uint64_t) * kFusedMaxBlocks * kFusedMaxRanks;

// `layout`'s count outputs: num_tokens_per_expert is the scratch (zero, and left zero: notify
// clears it, notify.clear_counts), the rank and domain counts none.
void launch_ht_layout_notify(const LayoutArgs& layout, const HtNotifyArgs& notify,
                             const FusedScratch& scratch, void* stream);

}  // namespace epcomm
