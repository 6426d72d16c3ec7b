// The fused preamble of a dispatch given topk_idx alone (no layout tensors): get_dispatch_layout's
// by-slot blocks and notify in one launch (bench/NOTES.md 11.43).
//
// Every block draws a ticket (its tokens go by it), counts its tokens (layout_block.cuh) into the
// Buffer's scratch expert counts, writes its rows of is_token_in_rank, and places its tokens among
// the rows to each rank (send_slot, the channel starts: fused_scan.cuh, 11.49); then, after a block
// barrier, its first thread adds 1 to an arrival counter with an acquire-release add. The block
// that draws the last arrival (every other block's stores are then visible to it, as after a grid
// barrier) runs notify's block (ht_notify_block.cuh) from the exchange on; the others exit, so the
// dispatch that follows is placed as they go (PDL). One launch and drain instead of two: each
// kernel's events held ~2.5 us beside its instructions (11.35).
//
// Between calls the scratch counts and the counters are zero: the last block resets the counters
// before notify, and notify clears the counts once it has read them (HtNotifyArgs::clear_counts),
// so no memset is queued per call. The stream orders the next call's launch after this one.
#include "intranode/ht_layout_notify.hpp"

#include <algorithm>

#include "core/check.hpp"
#include "core/func_attributes.hpp"
#include "core/pdl.cuh"
#include "core/ptx.cuh"
#include "intranode/fused_scan.cuh"
#include "intranode/ht_notify_block.cuh"
#include "intranode/layout_block.cuh"

namespace epcomm {

namespace {

static_assert(kSlotThreads == kNotifyThreads, "a layout block can run notify's block");
static_assert(kFusedLayoutMaxExperts <= kMaxSharedExperts,
              "the fused launch counts experts in shared memory");
static_assert(kFusedMaxRanks == kMaskRanks, "the board has a word for each rank a token's bits hold");

// A token's threads in the fused launch (one a slot, an aligned part of a warp).
int token_group(int num_topk) {
  return num_topk <= 8 ? 8 : 32;
}

template <typename Index, int kGroup>
__global__ void __launch_bounds__(kNotifyThreads, 1)
    ht_layout_notify_kernel(LayoutArgs layout, HtNotifyArgs notify, FusedScratch scratch) {
  pdl_entry();
  // Traced calls: the first block's start, as the largest complement (the word is zero between
  // calls, so no block needs to initialise it).
  const bool traced = notify.trace != nullptr;
  if (traced && threadIdx.x == 0) atomicMax(scratch.first_entry_complement, ~ptx::globaltimer());
  // Traced calls: the last block past each of the layout part's phases (kNotifyTraceTicketed + k).
  auto passed = [&](int k) {
    if (traced && threadIdx.x == 0) atomicMax(scratch.last_past + k, ptx::globaltimer());
  };
  // notify's part that needs no counts, ahead of them (NotifyAhead): whichever block runs notify
  // finds it done. Block 0's signature stores go to the peers: its fence below is system-wide.
  __shared__ int ticket;
  if (threadIdx.x == 0) ticket = static_cast<int>(atomicAdd(scratch.tickets, 1u));
  passed(0);
  const DomainView& v = notify.view;
  const std::uint64_t epoch = *notify.notify_epoch + 1;
  const ScanBoard board{scratch.block_rows, BlockRows::tag_of(epoch)};
  const NotifyAhead ahead{epoch, board.at(static_cast<int>(gridDim.x) - 1, 0)};
  load_live_peers(v);
  zero_counters(v, notify.num_channels, notify.recv_copied,
                static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x),
                static_cast<int>(gridDim.x * blockDim.x));
  extern __shared__ std::int32_t smem[];
  __syncthreads();  // the ticket; also orders load_live_peers' stores
  const std::uint64_t ranks = layout_by_slot_block<Index, kGroup>(layout, smem, ticket);
  passed(1);
  scan_block<kGroup>(notify, board, ticket, ranks, /*rank_rows=*/smem,  // SharedCounts: the rank counts first
                     [&] { passed(2); });
  passed(3);
  if (blockIdx.x == 0) {
    const Exchange x{v, v.num_domain_ranks, notify.num_channels, static_cast<int>(ahead.epoch & 1u),
                     notify_live_peer};
    for (int p = threadIdx.x; p < v.num_domain_ranks; p += blockDim.x)
      if (x.live(p)) store_signature(x.out(p).signature, notify.signature);
  }
  __shared__ bool last;
  __shared__ LaunchStamps stamps;  // traced calls, the last block's thread 0
  __syncthreads();                 // the block's counts and flags are stored before its arrival
  if (threadIdx.x == 0) {
    // The arrival is an acquire-release add (one device-scope fence, not __threadfence's sequentially
    // consistent two): it releases what the block stored (ordered before it by the barrier above),
    // and the block that draws the last arrival acquires what every earlier one released. Block 0's
    // signatures went to the peers: a system-wide fence first.
    if (blockIdx.x == 0) ptx::fence_acq_rel_sys();
    last = ptx::atom_add_acq_rel_gpu(scratch.arrivals, 1u) == gridDim.x - 1;
    if (last) {
      *scratch.arrivals = 0;  // the next call's counts (no block of this launch adds any more)
      *scratch.tickets = 0;
      if (traced) {
        stamps.launched = ~atomicExch(scratch.first_entry_complement, 0ull);
        for (int k = 0; k < kFusedTracePhases; ++k) stamps.last[k] = atomicExch(scratch.last_past + k, 0ull);
      }
    }
  }
  __syncthreads();
  if (last) ht_notify_block(notify, traced ? &stamps : nullptr, ahead);
}

}  // namespace

std::int64_t fused_layout_blocks(std::int64_t num_tokens, int num_topk) {
  return std::max<std::int64_t>(1,
                                (num_tokens * token_group(num_topk) + kNotifyThreads - 1) / kNotifyThreads);
}

bool can_fuse_layout_notify(int num_ranks, int ranks_per_domain, int num_experts, int num_topk,
                            std::int64_t num_tokens) {
  return num_ranks == ranks_per_domain && num_ranks <= kMaskRanks && num_experts <= kFusedLayoutMaxExperts &&
         num_topk >= 1 && num_topk <= 32 && fused_layout_blocks(num_tokens, num_topk) <= kFusedMaxBlocks;
}

void launch_ht_layout_notify(const LayoutArgs& given, const HtNotifyArgs& notify, const FusedScratch& scratch,
                             void* stream_ptr) {
  const LayoutArgs layout = with_divisors(given);
  EPCOMM_REQUIRE(can_fuse_layout_notify(layout.num_ranks, layout.ranks_per_domain, layout.num_experts,
                                        layout.num_topk, layout.num_tokens),
                 ErrorCategory::kInternal, "fused layout and notify: ", layout.num_ranks, " ranks, ",
                 layout.num_experts, " experts, ", layout.num_topk, " top-k slots, ", layout.num_tokens,
                 " tokens");
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int shared_entries = layout.num_ranks + 1 + layout.num_experts;  // one domain
  const std::size_t smem_bytes = sizeof(std::int32_t) * static_cast<std::size_t>(shared_entries);
  const int group = token_group(layout.num_topk);
  const auto blocks = static_cast<unsigned>(fused_layout_blocks(layout.num_tokens, layout.num_topk));
  auto launch = [&](auto kernel) {
    // As the layout kernel's (layout.cu): the smallest carveout that fits.
    raise_func_attribute(reinterpret_cast<const void*>(kernel),
                         cudaFuncAttributePreferredSharedMemoryCarveout, 0);
    launch_kernel(Launch::kPdl, kernel, blocks, kNotifyThreads, smem_bytes, stream, layout, notify, scratch);
  };
  if (layout.topk_is_int32 && group == 8)
    launch(ht_layout_notify_kernel<std::int32_t, 8>);
  else if (layout.topk_is_int32)
    launch(ht_layout_notify_kernel<std::int32_t, 32>);
  else if (group == 8)
    launch(ht_layout_notify_kernel<std::int64_t, 8>);
  else
    launch(ht_layout_notify_kernel<std::int64_t, 32>);
}

}  // namespace epcomm
