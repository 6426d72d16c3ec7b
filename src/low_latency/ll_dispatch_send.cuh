// Low-latency dispatch, send phase (ll_dispatch.cuh has the kernel; ll_args.hpp the protocol):
// the token rows cast to FP8 in registers, and their stores or puts into the destinations'
// staging (the selection lists are in ll_dispatch_lists.cuh). Templated on how peers are reached
// (ll_peers.cuh); definitions in an unnamed namespace, one private copy per including translation unit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

constexpr int kChannelsPerLane = 16;                                   // one lane: 2 x 16 bytes of BF16
constexpr int kPartChannels = 32 * kChannelsPerLane;                   // 512 = one UE8M0 word of scales
static_assert(kPartChannels == kLlPartChannels, "a send item is the layout's part");
constexpr int kLanesPerScaleBlock = kLlScaleBlock / kChannelsPerLane;  // 8 lanes share one scale
constexpr float kFp8Max = 448.0f;                                      // largest finite E4M3 value
constexpr float kAmaxFloor = 1e-4f;                                    // amax is clamped from below
constexpr std::uint32_t kFloatExpMask = 0x7f800000u;
constexpr std::uint32_t kFloatMantMask = 0x007fffffu;
constexpr int kFloatMantBits = 23;

// The FP8 cast of one lane's 16 channels (ll_cast_row_fp8 in the reference, operation for
// operation): returns the 16 E4M3 bytes; *scale_inv gets the block's scale_inv. The 8 lanes of a
// 128-channel block must call it together (their amax is reduced by shuffles).
__device__ __forceinline__ int4 cast_fp8(const int4 (&raw)[2], bool round_scale, float* scale_inv) {
  float v[kChannelsPerLane];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw[h]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(pairs[i]);
      v[h * 8 + 2 * i] = f.x;
      v[h * 8 + 2 * i + 1] = f.y;
    }
  }
  float amax = kAmaxFloor;  // fmaxf ignores NaN elements, as the reference does
#pragma unroll
  for (int i = 0; i < kChannelsPerLane; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int offset = 1; offset < kLanesPerScaleBlock; offset <<= 1)
    amax = fmaxf(amax, __shfl_xor_sync(kLlFullMask, amax, offset));
  float sinv = __fdiv_rn(amax, kFp8Max);
  float scale = __fdiv_rn(kFp8Max, amax);
  if (round_scale) {
    // 2^ceil(log2(sinv)) from the bits: a power of two stays, else the next one.
    std::uint32_t bits = __float_as_uint(sinv);
    if ((bits & kFloatMantMask) != 0) bits = (bits & kFloatExpMask) + (1u << kFloatMantBits);
    sinv = __uint_as_float(bits);
    scale = __fdiv_rn(1.0f, sinv);
  }
  *scale_inv = sinv;
  std::uint32_t words[4];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    std::uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const __nv_fp8_storage_t q =
          __nv_cvt_float_to_fp8(__fmul_rn(v[4 * w + b], scale), __NV_SATFINITE, __NV_E4M3);
      word |= static_cast<std::uint32_t>(q) << (8 * b);
    }
    words[w] = word;
  }
  return make_int4(static_cast<int>(words[0]), static_cast<int>(words[1]), static_cast<int>(words[2]),
                   static_cast<int>(words[3]));
}

// The map from (source, token, slot) to the row it arrives in starts empty (-1) in this call's
// outputs; this rank's receive phase fills it, after every block of the grid has cleared its share
// (the receive waits for this rank's own completion signal too).
__device__ void clear_token_rows(const LlDispatchArgs& a) {
  const LlLayout& l = a.layout;
  std::int32_t* rows = l.token_rows(a.workspace, a.half, 0);
  // At most kLlMaxRanks * kLlMaxTokensPerRank * kLlMaxTopk (2^27) entries: 32-bit indices.
  const int n = l.num_ranks * static_cast<int>(l.max_tokens) * l.max_topk;
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n;
       i += static_cast<int>(gridDim.x * blockDim.x))
    rows[i] = -1;
}

// One warp's send item, (token t, 512-channel part): what it loads, then the token's destinations
// and, for FP8, the cast, all in registers. Lane j holds top-k slot j's destination rank; `firsts`
// has one lane per distinct destination (0: routed nowhere).
struct RowItem {
  std::int64_t t = -1;  // -1: the warp has no item
  int part = 0;
  bool valid = false;  // this lane's 16 channels lie inside the row
  std::int64_t expert = -1;
  int rank = -1;
  unsigned same = 0;  // the lanes whose slot goes to this lane's rank
  unsigned firsts = 0;
  // The lane's piece: its 16 BF16 channels as loaded; with FP8, once routed, data[0] holds their
  // 16 E4M3 bytes (data[1] is then unused).
  int4 data[2] = {make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
  // FP8 only: the part's UE8M0 word (use_ue8m0) or the bits of this lane's block's scale_inv.
  std::uint32_t scale = 0;
};

// Stores one lane's piece of item `it` (and the part's scales) into the staging of the workspace
// `ws` (a receiver's, or this rank's own when the policy stages locally).
__device__ __forceinline__ void store_piece(const LlDispatchArgs& a, int parity, void* ws,
                                            const RowItem& it) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int lane = threadIdx.x % 32;
  const std::int64_t c0 = static_cast<std::int64_t>(it.part) * kPartChannels + lane * kChannelsPerLane;
  char* row = l.staging_x(ws, parity, v.domain_rank, it.t);
  if (!a.use_fp8) {
    if (it.valid) {
      auto* dst = reinterpret_cast<int4*>(row + c0 * 2);
      ptx::st_na_v4(dst, it.data[0]);
      ptx::st_na_v4(dst + 1, it.data[1]);
    }
    return;
  }
  if (it.valid) ptx::st_na_v4(reinterpret_cast<int4*>(row + c0), it.data[0]);
  std::uint32_t* scales = l.staging_scales(ws, parity, v.domain_rank, it.t);
  if (a.use_ue8m0) {
    if (lane == 0) scales[it.part] = it.scale;  // a 512-channel part is exactly one word
  } else if (it.valid && lane % kLanesPerScaleBlock == 0) {
    scales[it.part * (kPartChannels / kLlScaleBlock) + lane / kLanesPerScaleBlock] = it.scale;
  }
}

// Staging policies only, the whole warp: puts part `part` of token t (as store_piece staged it in
// this rank's own workspace) and the part's scales to rank d.
template <typename Peers>
__device__ __forceinline__ void put_piece(const LlDispatchArgs& a, int parity, int d, std::int64_t t,
                                          int part) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const std::int64_t first = static_cast<std::int64_t>(part) * kPartChannels;
  const std::int64_t channels = min(static_cast<std::int64_t>(kPartChannels), l.hidden - first);
  const std::int64_t channel_bytes = a.use_fp8 ? 1 : 2;
  char* piece = l.staging_x(a.workspace, parity, v.domain_rank, t) + first * channel_bytes;
  Peers::put_warp(v, piece, piece, static_cast<std::size_t>(channels * channel_bytes), d);
  if (!a.use_fp8) return;
  // The part's scales: one packed word (UE8M0), else one float per 128-channel block.
  std::uint32_t* scales = l.staging_scales(a.workspace, parity, v.domain_rank, t);
  std::uint32_t* words = a.use_ue8m0 ? scales + part : scales + part * (kPartChannels / kLlScaleBlock);
  const std::size_t num_words = a.use_ue8m0 ? 1u : static_cast<std::size_t>(channels / kLlScaleBlock);
  Peers::put_warp(v, words, words, num_words * sizeof(std::uint32_t), d);
}

// Per-peer telemetry: a token's row and scales, counted once per destination (with part 0).
__device__ __forceinline__ void count_row_sent(const LlDispatchArgs& a, int part, int d) {
  if (a.view.telemetry == nullptr || part != 0 || threadIdx.x % 32 != 0 || d == a.view.domain_rank) return;
  const LlLayout& l = a.layout;
  const std::uint64_t scales =
      !a.use_fp8 ? 0u : 4u * static_cast<std::uint64_t>(a.use_ue8m0 ? l.num_scale_words : l.num_scales);
  const std::uint64_t row = static_cast<std::uint64_t>(l.hidden) * (a.use_fp8 ? 1u : 2u) + scales;
  count_traffic(a.view, OpId::kLlDispatch, d, row, 0);
}

// The whole warp: issues item `item`'s loads (the lane's piece of x and its top-k id), nothing that
// waits for them. x does not wait for the ids: a token routed nowhere costs one unused read.
__device__ __forceinline__ RowItem load_row_item(const LlDispatchArgs& a, std::int64_t item) {
  const LlLayout& l = a.layout;
  const int lane = threadIdx.x % 32;
  RowItem it;
  const LlSplit tp = ll_split(item, l.by_parts);
  it.t = tp.quot;
  it.part = tp.rem;
  const std::int64_t c0 = static_cast<std::int64_t>(it.part) * kPartChannels + lane * kChannelsPerLane;
  it.valid = c0 < l.hidden;  // whole 128-channel blocks are valid or not (hidden % 128 == 0)
  if (it.valid) {
    const auto* src = reinterpret_cast<const int4*>(a.x + it.t * l.hidden + c0);
    it.data[0] = ptx::ld_na_v4(src);
    it.data[1] = ptx::ld_na_v4(src + 1);
  }
  if (lane < a.num_topk) it.expert = ll_load_expert(a.topk_idx, a.idx_bytes, it.t * a.num_topk + lane);
  return it;
}

// The whole warp, once the loads of `it` are back: its destinations and its FP8 cast. `mask`: the
// warp's (first_row_item's).
__device__ __forceinline__ void route_row_item(const LlDispatchArgs& a, RowItem& it, const WarpMask& mask) {
  const LlLayout& l = a.layout;
  const int lane = threadIdx.x % 32;
  if (it.expert >= 0 && it.expert < l.num_experts)
    it.rank = l.by_local_experts.divide(static_cast<int>(it.expert));
  if (mask.masked(it.rank)) it.rank = -1;  // nothing goes to a masked rank
  it.same = __match_any_sync(kLlFullMask, it.rank);
  it.firsts = __ballot_sync(kLlFullMask, it.rank >= 0 && __ffs(it.same) - 1 == lane);
  if (!a.use_fp8 || it.firsts == 0) return;  // warp-uniform
  float scale_inv = 0.0f;
  it.data[0] = cast_fp8(it.data, a.round_scale, &scale_inv);
  if (!a.use_ue8m0) {
    it.scale = __float_as_uint(scale_inv);
    return;
  }
  // UE8M0: the exponent bytes of the part's 4 blocks, from lanes 0, 8, 16, 24.
  const std::uint32_t byte = it.valid ? (__float_as_uint(scale_inv) & kFloatExpMask) >> kFloatMantBits : 0u;
  it.scale = 0;
#pragma unroll
  for (int b = 0; b < kPartChannels / kLlScaleBlock; ++b)
    it.scale |= __shfl_sync(kLlFullMask, byte, b * kLanesPerScaleBlock) << (8 * b);
}

// The warp's first row item (ll_row_warp_slot; bench/NOTES.md 11.87: 57 KB of row stores from one
// SM took 1.5 us to issue, when a token's parts all went to one block's warps).
__device__ __forceinline__ std::int64_t first_row_item_index(int row_blocks) {
  return ll_row_warp_slot(static_cast<int>(blockIdx.x), static_cast<int>(threadIdx.x / 32), row_blocks);
}

// The warp's first item, loaded and routed before the credit wait (none of it touches a peer's
// staging): a launch's first rows are ready to store the moment the credits are. Items go to the
// grid's first `row_blocks` blocks. The warp's mask into `mask` (for send_rows), its loads issued
// after the item's: the routing waits for one round trip, not for the ids' and then the mask's.
__device__ __forceinline__ RowItem first_row_item(const LlDispatchArgs& a, int row_blocks, WarpMask& mask) {
  const std::int64_t item = first_row_item_index(row_blocks);
  if (static_cast<int>(blockIdx.x) >= row_blocks || item >= a.num_tokens * a.layout.num_parts)
    return RowItem{};
  RowItem it = load_row_item(a, item);
  mask = WarpMask::load(a.view);
  route_row_item(a, it, mask);
  return it;
}

// The whole warp: stores item `it` into each destination's staging. Stored straight into each
// destination reached by stores (this rank itself included); staged once in this rank's own slot
// for those reached by puts, then put from there. Each destination is counted once (per-peer
// telemetry).
template <typename Peers>
__device__ __forceinline__ void store_row_item(const LlDispatchArgs& a, int parity, std::uint64_t seq,
                                               const RowItem& it) {
  if (it.firsts == 0) return;  // warp-uniform: routed nowhere
  const int me = a.view.domain_rank;
  bool own_copy = false;
  unsigned by_put = 0;  // lanes of `firsts` whose rank is reached by a put
  for (unsigned left = it.firsts; left != 0; left &= left - 1) {
    const int src_lane = __ffs(left) - 1;
    const int d = __shfl_sync(kLlFullMask, it.rank, src_lane);
    if (ll_by_put<Peers>(a.view, d)) {
      by_put |= 1u << src_lane;
      own_copy = true;
    } else if (d == me) {
      own_copy = true;
    } else {
      store_piece(a, parity, Peers::target(a.view, a.workspace, d), it);
    }
    if (!Peers::kStagesLocally && a.direct) {  // warp-uniform
      // The item's slots that d holds, tagged with the operation, beside its bytes
      // (ll_dispatch_direct.cuh's receive).
      const unsigned slots = __shfl_sync(kLlFullMask, it.same, src_lane);
      if (threadIdx.x % 32 == 0)
        a.layout.part_mask(Peers::target(a.view, a.workspace, d), parity, me, it.t)[it.part] =
            ll_pack_part_mask(seq, slots);
    }
    count_row_sent(a, it.part, d);
  }
  if (own_copy) store_piece(a, parity, a.workspace, it);
  if constexpr (Peers::kStagesLocally) {
    if (by_put != 0) __syncwarp();  // warp-uniform: the staged piece is complete before its puts
    for (; by_put != 0; by_put &= by_put - 1) {
      const int d = __shfl_sync(kLlFullMask, it.rank, __ffs(by_put) - 1);
      put_piece<Peers>(a, parity, d, it.t, it.part);
    }
  }
}

// Each warp of the first `row_blocks` blocks takes its first item (first_row_item_index) and every
// `row_blocks * kLlWarps`-th after it: the first as first_row_item left it; each later one's loads are issued
// before the item ahead of it is stored, so they overlap.
template <typename Peers>
__device__ void send_rows(const LlDispatchArgs& a, int parity, std::uint64_t seq, const RowItem& first,
                          int row_blocks, const WarpMask& mask) {
  if (first.t < 0) return;  // warp-uniform: no item
  const std::int64_t items = a.num_tokens * a.layout.num_parts;
  const std::int64_t num_warps = static_cast<std::int64_t>(row_blocks) * kLlWarps;
  RowItem cur = first;
  for (std::int64_t item = first_row_item_index(row_blocks); item < items; item += num_warps) {
    const bool more = item + num_warps < items;  // warp-uniform
    RowItem next;
    if (more) next = load_row_item(a, item + num_warps);
    store_row_item<Peers>(a, parity, seq, cur);
    if (!more) break;
    route_row_item(a, next, mask);
    cur = next;
  }
}

}  // namespace

}  // namespace epcomm
