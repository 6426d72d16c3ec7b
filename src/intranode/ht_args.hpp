// Arguments of the high-throughput kernels (notify, prepare, dispatch, combine): plain data
// shared by the host code that fills them and the kernels that read them.
//
// Protocol (one NVLink domain, G ranks; see bench/NOTES.md for the why):
//  1. notify: each rank scans is_token_in_rank into send_slot (the index of each token among its
//     rows to each destination), exchanges its count row, per-channel counts and per-expert
//     counts through the peers' mailboxes, and derives where every source's rows land here. The
//     exchange doubles as the opening barrier. One device-to-host handshake (the received total).
//  2. dispatch: sender blocks write every row straight to its final row in the destination's
//     region (no handshake per chunk) and publish per-(source, channel) progress; receivers copy
//     arrived rows into the outputs. A rank's rows to itself go straight to the outputs.
//  3. combine: sender blocks write each received block of rows back to its source's region (push),
//     or stage it in their own region for the source to read (pull); reducers sum the rows of each
//     token as they arrive (pull: reading the peers' regions over NVLink).
//  Schedule: every block sends, then receives (its warps copy out / reduce). Senders never wait for
//  receivers, so the blocks need not be co-resident.
//  Cached dispatch and combine open with `prepare` (zero own progress, then a domain barrier).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/call_signature.hpp"
#include "core/domain_view.hpp"
#include "core/fast_divisor.hpp"
#include "core/pdl.hpp"
#include "intranode/ht_layout.hpp"

namespace epcomm {

// Progress granularity: a dispatch sender warp releases its progress every kHtPublishTokens tokens,
// a combine sender warp every kHtCombinePublishRows rows (settled by the tuning runs of 2026-11-28,
// bench/NOTES.md; finer releases cost fences, coarser ones delay the receivers).
inline constexpr int kHtPublishTokens = 4;
inline constexpr int kHtCombinePublishRows = 2;

struct HtNotifyArgs {
  DomainView view;
  CallSignature signature;  // this call's; every peer's must equal it (published in the mailboxes)
  const bool* is_token_in_rank = nullptr;               // [T, G]
  const std::int32_t* num_tokens_per_expert = nullptr;  // [E]
  std::int64_t num_tokens = 0;
  int num_local_experts = 0;
  int num_channels = 0;                 // C: sender warps of the dispatch
  int tokens_per_channel = 0;           // channel c holds tokens [c*tpc, (c+1)*tpc)
  FastDivisor channel_of{1};            // by tokens_per_channel (at least 1), set on the host
  FastDivisor by_domain_rank{1};        // by view.num_domain_ranks, set on the host
  std::int32_t* chunk_start = nullptr;  // scratch [G][C + 1]
  std::int32_t* recv_copied = nullptr;  // scratch [G][C]: zeroed for the dispatch that follows
  int expert_alignment = 1;
  int copy_chunks = 0;  // copy-engine dispatch: K, whose chunk boundaries' send counts the host gets
  // Outputs (the handle).
  std::int32_t* send_slot = nullptr;            // [T, G]
  std::int32_t* count_matrix = nullptr;         // [G, G]
  std::int32_t* recv_chunk_start = nullptr;     // [G, C]
  std::int32_t* recv_chunk_count = nullptr;     // [G, C]
  std::int32_t* num_recv = nullptr;             // [1]
  std::int32_t* num_recv_per_expert = nullptr;  // [nle], aligned
  std::uint64_t* host_counts = nullptr;         // mapped host memory (HtHostCounts, ht_layout.hpp) or null
  std::uint64_t host_count_seq = 0;             // this call's sequence number (Buffer::Impl::notify_calls)
  std::uint64_t* notify_epoch = nullptr;        // device counter of exchanges (selects the parity)
  // The fused launch (ht_layout_notify.cu): num_tokens_per_expert, its scratch, writable; notify
  // clears the G * nle counts it read. Null otherwise.
  std::int32_t* clear_counts = nullptr;
  // EPCOMM_HT_TRACE: thread 0 stores %globaltimer at each NotifyTracePoint into
  // trace[(epoch % kNotifyTraceRing) * kNotifyTracePoints + point], or null.
  std::uint64_t* trace = nullptr;
};
static_assert(std::is_trivially_copyable_v<HtNotifyArgs>);

// notify's phase points (Buffer::notify_trace; names in kNotifyTracePointNames, in this order).
enum NotifyTracePoint : int {
  kNotifyTraceLaunch,        // the launch's first block began (the fused launch: its layout blocks;
                             // notify's own kernel: the same as entry)
  kNotifyTraceTicketed,      // the fused launch only: its last block to draw its ticket,
  kNotifyTraceCounted,       //   to count its tokens (layout_by_slot_block),
  kNotifyTraceLookedBack,    //   to have its rows before it (the scan's look-back),
  kNotifyTraceSlotted,       //   to store its send slots (then it arrives)
  kNotifyTraceEntry,         // notify's block began (the fused launch: once every block arrived)
  kNotifyTraceZeroed,        // the progress counters zeroed (block barrier)
  kNotifyTraceLoaded,        // thread 0 counted its tokens' flags (the scan's first pass, first columns;
                             // the fused launch, whose layout blocks scanned: the totals read)
  kNotifyTraceSummed,        // the block's prefix sums over them done (block barriers; the fused
                             // launch: the count rows stored)
  kNotifyTraceScanned,       // the mailboxes written and the send slots scanned (block barrier)
  kNotifyTraceReleased,      // thread 0 past its mailbox flag's system-scope release
  kNotifyTraceFlagsSeen,     // every peer's flag seen and its signature checked (block vote)
  kNotifyTraceCountsStored,  // thread 0 stored its count matrix and expert counts (CountWarps; their
                             // last warp then releases the host's counts)
  kNotifyTracePlaced,        // PlaceWarps' first thread past the received chunks' places (beside
                             // CountWarps)
  kNotifyTraceExit,          // every warp done (a traced call waits at a last block barrier)
  kNotifyTracePoints
};
inline constexpr int kNotifyTraceRing = 64;
// The fused launch's layout phases (kNotifyTraceTicketed...kNotifyTraceSlotted).
inline constexpr int kFusedTracePhases = kNotifyTraceEntry - kNotifyTraceTicketed;
inline constexpr const char* kNotifyTracePointNames[kNotifyTracePoints] = {
    "launch", "ticketed", "counted",  "looked-back", "slotted",       "entry",  "zeroed", "loaded",
    "summed", "scanned",  "released", "flags-seen",  "counts-stored", "placed", "exit"};

struct HtDispatchArgs {
  DomainView view;
  HtDispatchLayout region;
  const std::uint8_t* x = nullptr;  // [T, row_bytes] contiguous
  const float* x_scales = nullptr;  // FP8 scales, strided
  std::int64_t scale_stride_token = 0, scale_stride_block = 0;
  const void* topk_idx = nullptr;       // [T, k], int64 or int32 (region.idx_bytes)
  const float* topk_weights = nullptr;  // [T, k]
  std::int64_t num_tokens = 0;
  int num_local_experts = 0;
  int num_senders = 0;   // sender blocks (the whole grid, but for a copy-engine pack launch)
  bool phased = false;   // sender blocks copy out too once their sends are done (false: a pack launch)
  int num_channels = 0;  // sender warps (num_senders * kHtWarpsPerBlock)
  int tokens_per_channel = 0;
  int publish_tokens = kHtPublishTokens;  // tokens a sender warp forwards between progress releases
  bool outputs_in_region = false;  // zero-copy: the outputs are this rank's region; nothing to copy
  // Copy-engine dispatch: its pack launch (stage_x set) forwards only the peers' rows, each
  // payload row into stage_x (first_staged_row), the metadata straight into the peer's region, and
  // publishes no progress; it packs chunk after chunk (pack_chunks of them, copy_chunk_channel),
  // and once a warp's channels of chunk k are packed (visible system-wide) it adds 1 to packed[k]
  // (zeroed before the launch): the copy stream waits for every warp's count before it copies the
  // chunk, so every warp counts every chunk, whatever happens. The last launch (self_only)
  // forwards only this rank's own rows, then receives. Once the copy engine has moved chunk k of a
  // source's rows, a stream write stores kChannelComplete into the progress counter of the chunk's
  // first channel, which stands for every channel of the chunk: receivers read that one when
  // signal_chunks > 0. With `straight`, the pack stages no payload for a peer whose rows are
  // straight_copies (the copy engine copies those rows from x): only their metadata. With
  // straight_self, the last launch writes only the metadata of this rank's own rows when they are
  // straight_copies (the copy engine copies their payload to the outputs).
  std::uint8_t* stage_x = nullptr;
  bool straight = false;
  bool straight_self = false;
  int pack_chunks = 0;
  std::uint64_t* packed = nullptr;
  bool self_only = false;
  int signal_chunks = 0;
  const std::int32_t* send_slot = nullptr;
  const std::int32_t* count_matrix = nullptr;
  const std::int32_t* recv_chunk_start = nullptr;
  const std::int32_t* recv_chunk_count = nullptr;
  const std::int32_t* num_recv = nullptr;  // [1], for worst-case padding
  std::int32_t* recv_copied = nullptr;     // scratch [G][C]: rows copied out (notify/prepare zero it)
  std::int64_t num_rows = 0;               // rows of the outputs
  bool num_worst = false;                  // worst-case mode: num_rows is the same on every rank
  // Outputs.
  std::uint8_t* recv_x = nullptr;
  float* recv_scales = nullptr;
  void* recv_topk_idx = nullptr;
  float* recv_topk_weights = nullptr;
  std::int32_t* recv_src_idx = nullptr;
};
static_assert(std::is_trivially_copyable_v<HtDispatchArgs>);

struct HtCombineArgs {
  DomainView view;
  HtCombineLayout region;
  const std::uint16_t* x = nullptr;      // [rows, hidden] BF16 in dispatch order
  const float* topk_weights = nullptr;   // [rows, k] or null
  const std::uint16_t* bias0 = nullptr;  // [T, hidden] or null
  const std::uint16_t* bias1 = nullptr;
  std::int64_t hidden = 0;
  std::int64_t num_tokens = 0;
  int num_senders = 0;  // blocks [0, num_senders) send; then every block reduces
  bool pull = false;    // senders stage rows locally; reducers read peers
  bool staged = false;  // pull: the rows were staged before the kernel (copy engine)
  // Push by the peers' copy engines: they write share b of their rows for this rank into its
  // region and publish it (progress(my region, peer, b) = the share's rows); no senders here.
  bool copy_pushed = false;
  // Sender warps (num_senders * kHtWarpsPerBlock); 1 when staged; the chunks when copy_pushed.
  int num_shares = 0;
  int reduce_segments = 1;  // reducer warps take a part of each of this many slices of the tokens
  int publish_rows = kHtCombinePublishRows;  // rows a sender warp copies between progress releases
  const std::int32_t* send_slot = nullptr;     // [T, G]
  const std::int32_t* count_matrix = nullptr;  // [G, G]
  std::uint16_t* out = nullptr;                // [T, hidden]
  float* out_weights = nullptr;                // [T, k] or null
};
static_assert(std::is_trivially_copyable_v<HtCombineArgs>);

// Host-side launchers (stream is a cudaStream_t).
void launch_ht_notify(const HtNotifyArgs& args, void* stream);
// `recv_copied` ([G][num_channels], may be null) is zeroed for the cached dispatch that follows.
// `op` (kDispatch or kCombine) is the operation a barrier timeout is reported under; `sig` the call
// every peer's must equal (checked in the barrier: combine and a cached dispatch exchange no counts).
// `how`: Launch::kOrdinary for a cached dispatch's (with PDL it cost 2.7 us, bench/NOTES.md 11.36).
void launch_ht_prepare(const DomainView& view, int num_channels, std::int32_t* recv_copied, OpId op,
                       const CallSignature& sig, Launch how, void* stream);
void launch_ht_dispatch(const HtDispatchArgs& args, int num_blocks, Launch how, void* stream);
// Copy-engine dispatch: a chunk's channels are complete (receivers clamp it to each channel's rows).
inline constexpr std::uint64_t kChannelComplete = 0x7fffffff;
void launch_ht_combine(const HtCombineArgs& args, int num_blocks, void* stream);

}  // namespace epcomm
