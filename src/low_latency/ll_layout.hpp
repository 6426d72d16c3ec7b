// Where low-latency mode keeps everything inside a rank's workspace: the single source of truth
// the host uses to size the workspace and to make output views, and kernels use to index their own
// and their peers' workspaces (every rank has the same layout). The workspace is the data area of
// the rank's NVLink region (RegionLayout::data) with the CUDA IPC transport, or one symmetric
// allocation with the NVSHMEM transport (then every offset names the same bytes on every PE). The
// protocol that uses these sections is described in ll_args.hpp.
//
//   [ control: LlControl x 2 kinds                                      (dispatch, combine)     ]
//   [ dispatch staging x:      [2 parities][R sources][T tokens][hidden * 2 bytes]               ]
//   [ dispatch staging scales: [2][R][T][hidden/128] f32 (UE8M0: ceil(hidden/512) packed words) ]
//   [ dispatch selections:     [2][R sources][E experts][T] int32 ((token << 8) | top-k slot)    ]
//   [ dispatch selection counts: [2][R sources][E] int32                                        ]
//   [ dispatch part masks:     [2][R sources][T][ceil(hidden/512)] u64 ((seq << 16) | slots)     ]
//   [ dispatch tagged counts:  [2][R sources][E] u64 (ll_tag_word: selection count)             ]
//   [ dispatch tagged places:  [2][R sources][T][max_topk] u64 (ll_tag_word: slot place)        ]
//   [ dispatch rows done:      [2][R sources][kLlMaxBlocks] u64 (seq of each sending block)     ]
//   [ combine weights:         [2 parities][R sources][T tokens][max_topk] u64 (tagged f32)      ]
//   [ combine partials done:   [2][R holders][kLlMaxBlocks] u64 (seq of each summing block)       ]
//   [ combine partials:        [2 parities][T tokens][R holders][hidden] f32 (into the owner)     ]
//   [ combine stage:           [2 parities][R owners][T tokens][hidden] f32 (puts' source)        ]
//   [ zero-copy y, half 0 | half 1: [nle][R*T][hidden] bf16 each                                 ]
//   [ outputs, half 0 | half 1: recv_x | recv_scales | recv_count | layout_range | src_info |
//                                token_rows | combine out                                       ]
//
// Staging sections are indexed by the device-side parity of an operation (ll_args.hpp); outputs
// and zero-copy buffers by the host-side half the call returned views of.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/call_signature.hpp"
#include "core/fast_divisor.hpp"
#include "epcomm/low_latency_limits.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

inline constexpr int kLlScaleBlock = 128;               // channels per FP8 scale
inline constexpr int kLlScalesPerWord = 4;              // UE8M0 exponents packed into one int32
inline constexpr std::size_t kLlSmallAlignment = 128;   // small sections: one cache line
inline constexpr std::size_t kLlLargeAlignment = 4096;  // row sections: page-ish boundaries
// Channels of one dispatch send item (a warp's part of a row: 16 channels a lane).
inline constexpr int kLlPartChannels = 512;
// The combine's warp items: 256 channels (ll_combine_parts.cuh says why).
inline constexpr int kLlCombinePartChannels = 256;
// Blocks of a low-latency launch at most (one per SM): sizes the per-block completion flags.
inline constexpr int kLlMaxBlocks = 256;

enum LlKind : int { kLlKindDispatch = 0, kLlKindCombine = 1, kLlNumKinds = 2 };

// Counters of one kind of operation in one rank's workspace. The workspace starts zeroed.
struct LlControl {
  // Local: written only by this rank's own kernels.
  std::uint64_t seq;            // operations of this kind begun on this rank (device counter)
  std::uint64_t issued[2];      // seq of the operation whose outputs are in host half h
  std::uint32_t send_arrivals;  // send-phase blocks done in the running launch (last one resets)
  std::uint8_t pad[128 - 28];
  // Written by peers (release stores or adds, read with acquire loads; freed: unordered adds).
  std::uint64_t done[2][kLlMaxRanks];  // [parity][source]: its blocks done writing into me (all ops)
  // [parity][receiver]: the receiver's receive-phase blocks that finished reading this rank's
  // staging, over all operations of that parity (each block of each operation adds 1).
  std::uint64_t freed[2][kLlMaxRanks];
  std::uint64_t weights[2][kLlMaxRanks];  // [parity][source reached by puts]: seq whose weights are in place
  // Dispatch by direct stores (ll_dispatch_direct.cuh), [parity][source]: the source's token count
  // of its latest operation of that parity (written before its row block 0's flag).
  std::int64_t tokens[2][kLlMaxRanks];
  // [parity][source]: the source's call signature of its latest operation of that parity, written
  // before its done signal (ll_args.hpp, steps 2 and 4).
  CallSignature signature[2][kLlMaxRanks];
};
static_assert(sizeof(LlControl) % kLlSmallAlignment == 0);

struct LlLayout {
  int num_ranks = 0;            // R (every rank of the Buffer, across NVLink domains too)
  int num_experts = 0;          // E (global)
  int num_local_experts = 0;    // nle = E / R
  int max_topk = 0;             // K: slots per token in staging
  int num_scales = 0;           // hidden / 128
  int num_scale_words = 0;      // ceil(hidden / 512)
  std::int64_t max_tokens = 0;  // T
  std::int64_t hidden = 0;
  std::int64_t capacity = 0;          // R * T rows per local expert
  std::size_t staging_row_bytes = 0;  // hidden * 2 (room for a BF16 row; FP8 rows use the first half)

  // Offsets from the start of the workspace.
  std::size_t control = 0;
  std::size_t dispatch_x = 0, dispatch_scales = 0, dispatch_sel = 0, dispatch_sel_count = 0;
  std::size_t dispatch_part_mask = 0, dispatch_rows_done = 0;
  std::size_t dispatch_tagged_count = 0, dispatch_tagged_place = 0;  // the direct dispatch's lists
  // End of dispatch_rows_done: [part_mask, here) holds sequence numbers (the direct dispatch's).
  std::size_t dispatch_direct_end = 0;
  int num_parts = 0;  // ceil(hidden / kLlPartChannels): send items per token
  // Item indices taken apart without a division each (a 32-bit division is ~20 dependent
  // instructions; the combine's warps took ~18 each, NOTES 11.57): by num_parts, by the
  // combine's parts a row, ceil(hidden / kLlCombinePartChannels), and an expert's holder by
  // num_local_experts.
  FastDivisor by_parts{1}, by_combine_parts{1}, by_local_experts{1};
  std::size_t combine_weights = 0, combine_partials_done = 0, combine_part = 0, combine_stage = 0;
  // End of combine_partials_done: [combine_weights, here) holds sequence numbers (reset_ll_sequence).
  std::size_t combine_tagged_end = 0;
  std::size_t combine_y[2] = {};
  std::size_t outputs[2] = {};
  std::size_t output_bytes = 0;  // one half's output block
  // Offsets inside an output block.
  std::size_t out_recv_x = 0, out_recv_scales = 0, out_recv_count = 0, out_layout_range = 0, out_src_info = 0,
              out_token_rows = 0, out_combine = 0;
  std::size_t total_bytes = 0;  // bytes of the workspace (<= the region's data area with CUDA IPC)

  EPCOMM_HD static LlLayout make(int num_ranks, std::int64_t max_tokens, std::int64_t hidden, int num_experts,
                                 int max_topk) {
    LlLayout l;
    l.num_ranks = num_ranks;
    l.num_local_experts = num_ranks > 0 ? num_experts / num_ranks : 0;
    l.num_experts = num_experts;
    l.max_topk = max_topk;
    l.num_scales = static_cast<int>(hidden / kLlScaleBlock);
    l.num_scale_words = (l.num_scales + kLlScalesPerWord - 1) / kLlScalesPerWord;
    l.max_tokens = max_tokens;
    l.hidden = hidden;
    l.capacity = static_cast<std::int64_t>(num_ranks) * max_tokens;
    l.staging_row_bytes = static_cast<std::size_t>(hidden) * 2u;
    l.num_parts = static_cast<int>((hidden + kLlPartChannels - 1) / kLlPartChannels);
    l.by_parts = FastDivisor(l.num_parts > 0 ? l.num_parts : 1);
    const auto combine_parts =
        static_cast<int>((hidden + kLlCombinePartChannels - 1) / kLlCombinePartChannels);
    l.by_combine_parts = FastDivisor(combine_parts > 0 ? combine_parts : 1);
    l.by_local_experts = FastDivisor(l.num_local_experts > 0 ? l.num_local_experts : 1);
    const auto R = static_cast<std::size_t>(num_ranks);
    const auto T = static_cast<std::size_t>(max_tokens);
    const auto K = static_cast<std::size_t>(max_topk);
    const auto E = static_cast<std::size_t>(num_experts);
    const auto H = static_cast<std::size_t>(hidden);
    const auto nle = static_cast<std::size_t>(l.num_local_experts);
    const auto cap = static_cast<std::size_t>(l.capacity);
    const auto nb = static_cast<std::size_t>(l.num_scales);

    std::size_t at = 0;
    l.control = at;
    at += sizeof(LlControl) * kLlNumKinds;
    l.dispatch_x = at = align_up(at, kLlLargeAlignment);
    at += 2u * R * T * l.staging_row_bytes;
    l.dispatch_scales = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * T * nb * 4u;
    l.dispatch_sel = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * E * T * 4u;
    l.dispatch_sel_count = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * E * 4u;
    l.dispatch_part_mask = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * T * static_cast<std::size_t>(l.num_parts) * 8u;
    l.dispatch_tagged_count = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * E * 8u;
    l.dispatch_tagged_place = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * T * K * 8u;
    l.dispatch_rows_done = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * static_cast<std::size_t>(kLlMaxBlocks) * 8u;
    l.dispatch_direct_end = at;
    l.combine_weights = at = align_up(at, kLlSmallAlignment);
    at += l.combine_weights_bytes();
    l.combine_partials_done = at = align_up(at, kLlSmallAlignment);
    at += 2u * R * static_cast<std::size_t>(kLlMaxBlocks) * 8u;
    l.combine_tagged_end = at;
    l.combine_part = at = align_up(at, kLlLargeAlignment);
    at += 2u * T * R * H * 4u;
    l.combine_stage = at = align_up(at, kLlLargeAlignment);
    at += 2u * R * T * H * 4u;
    for (int h = 0; h < 2; ++h) {
      l.combine_y[h] = at = align_up(at, kLlLargeAlignment);
      at += nle * cap * H * 2u;
    }
    // One half's outputs, relative to its start.
    std::size_t o = 0;
    l.out_recv_x = o;
    o += nle * cap * H * 2u;
    l.out_recv_scales = o = align_up(o, kLlSmallAlignment);
    o += nle * nb * cap * 4u;
    l.out_recv_count = o = align_up(o, kLlSmallAlignment);
    o += nle * 4u;
    l.out_layout_range = o = align_up(o, kLlSmallAlignment);
    o += nle * R * 8u;
    l.out_src_info = o = align_up(o, kLlSmallAlignment);
    o += nle * cap * 4u;
    l.out_token_rows = o = align_up(o, kLlSmallAlignment);
    o += R * T * K * 4u;
    l.out_combine = o = align_up(o, kLlSmallAlignment);
    o += T * H * 2u;
    l.output_bytes = align_up(o, kLlLargeAlignment);
    for (int h = 0; h < 2; ++h) {
      l.outputs[h] = at = align_up(at, kLlLargeAlignment);
      at += l.output_bytes;
    }
    l.total_bytes = align_up(at, kLlLargeAlignment);
    return l;
  }

  // ---- this rank's or a peer's workspace (`ws` is its first byte) ----
  EPCOMM_HD static char* base(void* ws) { return static_cast<char*>(ws); }
  EPCOMM_HD LlControl* control_of(void* ws, int kind) const {
    return reinterpret_cast<LlControl*>(base(ws) + control) + kind;
  }
  EPCOMM_HD std::size_t staging_index(int parity, int src_rank, std::int64_t token_idx) const {
    return (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
            static_cast<std::size_t>(src_rank)) *
               static_cast<std::size_t>(max_tokens) +
           static_cast<std::size_t>(token_idx);
  }
  // Dispatch staging of token token_idx of source src_rank, in the receiver's workspace.
  EPCOMM_HD char* staging_x(void* ws, int parity, int src_rank, std::int64_t token_idx) const {
    return base(ws) + dispatch_x + staging_index(parity, src_rank, token_idx) * staging_row_bytes;
  }
  EPCOMM_HD std::uint32_t* staging_scales(void* ws, int parity, int src_rank, std::int64_t token_idx) const {
    return reinterpret_cast<std::uint32_t*>(base(ws) + dispatch_scales) +
           staging_index(parity, src_rank, token_idx) * static_cast<std::size_t>(num_scales);
  }
  // Selections of global expert `expert` made by source src_rank, in the expert's holder's
  // workspace: T entries, (token << 8) | top-k slot, the first sel_count(...)[expert] of them valid.
  EPCOMM_HD std::int32_t* sel(void* ws, int parity, int src_rank, int expert) const {
    const std::size_t list = (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
                              static_cast<std::size_t>(src_rank)) *
                                 static_cast<std::size_t>(num_experts) +
                             static_cast<std::size_t>(expert);
    return reinterpret_cast<std::int32_t*>(base(ws) + dispatch_sel) +
           list * static_cast<std::size_t>(max_tokens);
  }
  // [E]: how many selections of each expert source src_rank made (valid where this rank holds it).
  EPCOMM_HD std::int32_t* sel_count(void* ws, int parity, int src_rank) const {
    return reinterpret_cast<std::int32_t*>(base(ws) + dispatch_sel_count) +
           (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
            static_cast<std::size_t>(src_rank)) *
               static_cast<std::size_t>(num_experts);
  }
  // [num_parts]: per send item of source src_rank's token token_idx, written with the item's bytes:
  // (seq << 16) | the slots (bit j: top-k slot j) whose experts this rank holds. The seq tells this
  // operation's mask from one an earlier operation left for a token not sent here this time.
  EPCOMM_HD std::uint64_t* part_mask(void* ws, int parity, int src_rank, std::int64_t token_idx) const {
    return reinterpret_cast<std::uint64_t*>(base(ws) + dispatch_part_mask) +
           staging_index(parity, src_rank, token_idx) * static_cast<std::size_t>(num_parts);
  }
  // The direct dispatch's lists (ll_dispatch_direct.cuh), in the receiver's workspace, each word
  // tagged with its operation (ll_tag_word) and read as soon as its tag is this operation's, with
  // no signal to wait for first: [E] source src_rank's selection count of each expert (as
  // sel_count), and [max_topk] where its token token_idx's slots land here (ll_pack_place: local
  // expert and place in that expert's list of the source; valid for the slots its part masks name).
  EPCOMM_HD std::uint64_t* tagged_count(void* ws, int parity, int src_rank) const {
    return reinterpret_cast<std::uint64_t*>(base(ws) + dispatch_tagged_count) +
           (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
            static_cast<std::size_t>(src_rank)) *
               static_cast<std::size_t>(num_experts);
  }
  EPCOMM_HD std::uint64_t* tagged_place(void* ws, int parity, int src_rank, std::int64_t token_idx) const {
    return reinterpret_cast<std::uint64_t*>(base(ws) + dispatch_tagged_place) +
           staging_index(parity, src_rank, token_idx) * static_cast<std::size_t>(max_topk);
  }
  // The seq of source src_rank's latest operation of this parity whose block `block` has finished
  // writing its rows here.
  EPCOMM_HD std::uint64_t* rows_done(void* ws, int parity, int src_rank, int block) const {
    return block_flag(ws, dispatch_rows_done, parity, src_rank, block);
  }
  // The bytes of the tagged combine weights, [2][R][T][max_topk] of 8 bytes (reset_ll_sequence
  // clears them: their tags hold sequence numbers, which restart from 0).
  EPCOMM_HD std::size_t combine_weights_bytes() const {
    return 2u * static_cast<std::size_t>(num_ranks) * static_cast<std::size_t>(max_tokens) *
           static_cast<std::size_t>(max_topk) * sizeof(std::uint64_t);
  }
  // [T][max_topk]: the combine weights of source src_rank's tokens, in a holder's workspace, each
  // tagged with its operation (ll_tag_word).
  EPCOMM_HD std::uint64_t* combine_weights_of(void* ws, int parity, int src_rank) const {
    return reinterpret_cast<std::uint64_t*>(base(ws) + combine_weights) +
           (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
            static_cast<std::size_t>(src_rank)) *
               static_cast<std::size_t>(max_tokens) * static_cast<std::size_t>(max_topk);
  }
  // The seq of holder `holder`'s latest combine of this parity whose block `block` has finished
  // writing its partial sums here (the CUDA IPC combine's per-block flags, ll_combine.cuh).
  EPCOMM_HD std::uint64_t* partials_done(void* ws, int parity, int holder, int block) const {
    return block_flag(ws, combine_partials_done, parity, holder, block);
  }
  // A per-block flag in a [2 parities][R ranks][kLlMaxBlocks] u64 section at offset `section`.
  EPCOMM_HD std::uint64_t* block_flag(void* ws, std::size_t section, int parity, int rank, int block) const {
    return reinterpret_cast<std::uint64_t*>(base(ws) + section) +
           (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
            static_cast<std::size_t>(rank)) *
               static_cast<std::size_t>(kLlMaxBlocks) +
           static_cast<std::size_t>(block);
  }
  // [hidden]: holder `holder`'s partial sum of token token_idx, in the token's owner's workspace.
  EPCOMM_HD float* combine_partial(void* ws, int parity, std::int64_t token_idx, int holder) const {
    const std::size_t row = (static_cast<std::size_t>(parity) * static_cast<std::size_t>(max_tokens) +
                             static_cast<std::size_t>(token_idx)) *
                                static_cast<std::size_t>(num_ranks) +
                            static_cast<std::size_t>(holder);
    return reinterpret_cast<float*>(base(ws) + combine_part) + row * static_cast<std::size_t>(hidden);
  }
  // [hidden]: where a staging transport computes its partial of owner `owner`'s token before the put.
  EPCOMM_HD float* combine_staged(void* ws, int parity, int owner, std::int64_t token_idx) const {
    const std::size_t row = (static_cast<std::size_t>(parity) * static_cast<std::size_t>(num_ranks) +
                             static_cast<std::size_t>(owner)) *
                                static_cast<std::size_t>(max_tokens) +
                            static_cast<std::size_t>(token_idx);
    return reinterpret_cast<float*>(base(ws) + combine_stage) + row * static_cast<std::size_t>(hidden);
  }

  // ---- this rank's outputs of host half `half` ----
  EPCOMM_HD char* output_block(void* ws, int half) const { return base(ws) + outputs[half]; }
  EPCOMM_HD std::uint8_t* recv_x(void* ws, int half) const {
    return reinterpret_cast<std::uint8_t*>(output_block(ws, half) + out_recv_x);
  }
  // [nle][words][capacity]: float scale_inv (words = num_scales) or packed UE8M0 (num_scale_words).
  EPCOMM_HD std::uint32_t* recv_scales(void* ws, int half) const {
    return reinterpret_cast<std::uint32_t*>(output_block(ws, half) + out_recv_scales);
  }
  EPCOMM_HD std::int32_t* recv_count(void* ws, int half) const {
    return reinterpret_cast<std::int32_t*>(output_block(ws, half) + out_recv_count);
  }
  EPCOMM_HD std::int64_t* layout_range(void* ws, int half) const {
    return reinterpret_cast<std::int64_t*>(output_block(ws, half) + out_layout_range);
  }
  EPCOMM_HD std::int32_t* src_info(void* ws, int half) const {
    return reinterpret_cast<std::int32_t*>(output_block(ws, half) + out_src_info);
  }
  // [R][T][max_topk]: the local row (expert * capacity + row) that (source, token, slot) was
  // received into, or -1: the dispatch's map for its combine.
  EPCOMM_HD std::int32_t* token_rows(void* ws, int half, int src_rank) const {
    return reinterpret_cast<std::int32_t*>(output_block(ws, half) + out_token_rows) +
           static_cast<std::size_t>(src_rank) * static_cast<std::size_t>(max_tokens) *
               static_cast<std::size_t>(max_topk);
  }
  EPCOMM_HD std::uint16_t* combine_out(void* ws, int half) const {
    return reinterpret_cast<std::uint16_t*>(output_block(ws, half) + out_combine);
  }
  EPCOMM_HD std::uint16_t* zero_copy_y(void* ws, int half) const {
    return reinterpret_cast<std::uint16_t*>(base(ws) + combine_y[half]);
  }
};

// A 32-bit value as a peer leaves it for a reader that polls it (a combine weight, a tagged list's
// count or place): the value's bits in the low word and its operation's tag in the high word, one
// 8-byte store, so a reader that sees this operation's tag has this operation's value, with no flag
// to wait for first (ll_combine.cuh, ll_dispatch_direct.cuh). The tag is seq's low 32 bits with bit
// 0 set: never 0 (a zeroed entry, as reset_ll_sequence leaves them, matches no operation), and
// distinct for the operations of one parity (they share bit 0) until 2^32 operations apart.
EPCOMM_HD constexpr std::uint32_t ll_op_tag(std::uint64_t seq) {
  return static_cast<std::uint32_t>(seq) | 1u;
}
EPCOMM_HD constexpr std::uint64_t ll_tag_word(std::uint32_t bits, std::uint64_t seq) {
  return (static_cast<std::uint64_t>(ll_op_tag(seq)) << 32) | bits;
}
EPCOMM_HD constexpr bool ll_word_is_of(std::uint64_t word, std::uint64_t seq) {
  return static_cast<std::uint32_t>(word >> 32) == ll_op_tag(seq);
}
EPCOMM_HD constexpr std::uint32_t ll_word_bits(std::uint64_t word) {
  return static_cast<std::uint32_t>(word);
}

// An entry of a dispatch selection list (sel): the token and the top-k slot that selected the
// expert.
static_assert(kLlMaxTopk <= 256 && kLlMaxTokensPerRank * kLlMaxTopk < (std::int64_t{1} << 23));
EPCOMM_HD constexpr std::int32_t ll_pack_selection(std::int32_t token, int slot) {
  return (token << 8) | slot;
}
EPCOMM_HD constexpr std::int32_t ll_selection_token(std::int32_t entry) {
  return entry >> 8;
}
EPCOMM_HD constexpr int ll_selection_slot(std::int32_t entry) {
  return entry & 0xff;
}

// A slot place of the direct dispatch (tagged_place): the local expert and the place in its list
// of the source, or kLlDroppedPlace for a selection past T.
static_assert(kLlMaxTokensPerRank <= (1 << 16), "a place fits in 16 bits");
inline constexpr std::int32_t kLlDroppedPlace = -1;
EPCOMM_HD constexpr std::int32_t ll_pack_place(int local_expert, std::int32_t place) {
  return (local_expert << 16) | place;
}
EPCOMM_HD constexpr int ll_place_expert(std::int32_t entry) {
  return entry >> 16;
}
EPCOMM_HD constexpr std::int32_t ll_place_row(std::int32_t entry) {
  return entry & 0xffff;
}

// A part mask of the direct dispatch (part_mask): the operation's seq (48 bits) above the 16 slot
// bits; a mask some other operation left names no slot.
static_assert(kLlMaxTopk <= 16, "a part mask has 16 slot bits");
inline constexpr std::uint64_t kLlMaskSeqBits = (std::uint64_t{1} << 48) - 1;
EPCOMM_HD constexpr std::uint64_t ll_pack_part_mask(std::uint64_t seq, unsigned slots) {
  return (seq & kLlMaskSeqBits) << 16 | (slots & 0xffffu);
}
EPCOMM_HD constexpr unsigned ll_part_slots(std::uint64_t mask, std::uint64_t seq) {
  return (mask >> 16) == (seq & kLlMaskSeqBits) ? static_cast<unsigned>(mask & 0xffffu) : 0u;
}

}  // namespace epcomm
