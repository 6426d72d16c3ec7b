// Low-latency dispatch, send phase (ll_dispatch.cuh has the kernel; ll_args.hpp the protocol):
// each expert's selection list, the token rows cast to FP8 in registers, and their stores or puts
// into the destinations' staging. Templated on how peers are reached (ll_peers.cuh); definitions
// in an unnamed namespace, one private copy per including translation unit.
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
  const std::int64_t n = static_cast<std::int64_t>(l.num_ranks) * l.max_tokens * l.max_topk;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    rows[i] = -1;
}

// Selections (top-k ids) a list block stages in shared memory at once.
constexpr int kListChunk = 4096;
constexpr int kListUnroll = 4;  // 32-selection steps of a warp's scan in flight
constexpr std::int32_t kInvalidId = -2;

// One warp appends expert `expert`'s selections among ids[0, n) (global selection index `base` +
// i) to its list, in index order (token order, then slot order: the reference's), from *count on.
__device__ __forceinline__ void scan_expert(const std::int32_t* ids, int n, int base, int num_topk,
                                            int expert, std::int64_t max_rows, std::int32_t* list,
                                            std::int64_t* count) {
  const int lane = threadIdx.x % 32;
  for (int i0 = 0; i0 < n; i0 += 32 * kListUnroll) {
    std::int32_t id[kListUnroll];
#pragma unroll
    for (int u = 0; u < kListUnroll; ++u) {
      const int i = i0 + u * 32 + lane;
      id[u] = i < n ? ids[i] : -1;
    }
#pragma unroll
    for (int u = 0; u < kListUnroll; ++u) {
      const bool hit = id[u] == expert;
      const unsigned hits = __ballot_sync(kLlFullMask, hit);
      const std::int64_t at = *count + __popc(hits & ((1u << lane) - 1u));
      if (hit && at < max_rows) {
        const int g = base + i0 + u * 32 + lane;
        const int t = g / num_topk;
        list[at] = ll_pack_selection(t, g - t * num_topk);
      }
      *count += __popc(hits);
    }
  }
}

// The grid's last ceil(E / warps per block) blocks write every expert's list of this rank's
// selections into the expert's holder, with its length (a staging policy: into this rank's own
// workspace, then puts them): the block stages the top-k ids in shared memory, then each warp scans
// them for its expert. Entries outside [-1, E) are reported; selections beyond T of one expert (a
// token naming it twice) are reported and dropped. The other blocks return at once.
template <typename Peers>
__device__ void send_selections(const LlDispatchArgs& a, int parity) {
  __shared__ std::int32_t ids[kListChunk];
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int list_blocks = min(static_cast<int>(gridDim.x), (l.num_experts + kLlWarps - 1) / kLlWarps);
  const int b = static_cast<int>(blockIdx.x) - (static_cast<int>(gridDim.x) - list_blocks);
  if (b < 0) return;  // block-uniform
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32), me = v.domain_rank;
  // NOTE: 32-bit indices: T * k <= kLlMaxTokensPerRank * kLlMaxTopk fits.
  const int n = static_cast<int>(a.num_tokens) * a.num_topk;
  const int rounds = (l.num_experts + list_blocks * kLlWarps - 1) / (list_blocks * kLlWarps);
  for (int round = 0; round < rounds; ++round) {
    const int expert = (round * list_blocks + b) * kLlWarps + warp;  // may be >= E: only stages
    const int holder_rank = expert / l.num_local_experts;
    // A masked holder gets no list: its experts' slots behave as -1 (SPEC "Rank masking").
    const bool to_masked = expert < l.num_experts && peer_masked(v, holder_rank);
    // Staged here (and put below) for a holder reached by puts; else straight into its workspace.
    const bool by_put = expert < l.num_experts && ll_by_put<Peers>(v, holder_rank);
    void* holder =
        by_put || expert >= l.num_experts ? a.workspace : Peers::target(v, a.workspace, holder_rank);
    std::int32_t* list = l.sel(holder, parity, me, expert < l.num_experts ? expert : 0);
    std::int64_t count = 0;
    for (int base = 0; base < n; base += kListChunk) {
      const int chunk = min(kListChunk, n - base);
      __syncthreads();  // the previous chunk is scanned
      for (int i = threadIdx.x; i < chunk; i += blockDim.x) {
        const std::int64_t e = ll_load_expert(a.topk_idx, a.idx_bytes, base + i);
        const bool bad = e < -1 || e >= l.num_experts;
        if (bad && b == 0 && round == 0)
          report_failure(v.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         -1, e, (base + i) / a.num_topk);
        ids[i] = bad ? kInvalidId : static_cast<std::int32_t>(e);
      }
      __syncthreads();
      if (expert < l.num_experts && !to_masked)
        scan_expert(ids, chunk, base, a.num_topk, expert, l.max_tokens, list, &count);
    }
    if (expert >= l.num_experts || to_masked) continue;
    if (count > l.max_tokens) {
      // NOTE: a source owns T rows of each expert; only a token naming an expert twice can exceed
      // them. The extra rows are dropped, never written out of bounds.
      if (lane == 0)
        report_failure(v.status, StatusCode::kRegionTooSmall, OpId::kLlDispatch, CounterId::kNone, v.rank,
                       holder_rank, l.max_tokens, count);
      count = l.max_tokens;
    }
    std::int32_t* count_slot = l.sel_count(holder, parity, me) + expert;
    if (lane == 0) *count_slot = static_cast<std::int32_t>(count);
    if constexpr (Peers::kStagesLocally) {
      if (by_put) {
        __syncwarp();
        if (count > 0)
          Peers::put_warp(v, list, list, sizeof(std::int32_t) * static_cast<std::size_t>(count), holder_rank);
        if (lane == 0) Peers::put(v, count_slot, count_slot, sizeof(std::int32_t), holder_rank);
      }
    }
  }
}

// Stores one lane's piece of part `part` of token t (and the part's scales) into the staging of
// the workspace `ws` (a receiver's, or this rank's own when the policy stages locally).
__device__ __forceinline__ void store_piece(const LlDispatchArgs& a, int parity, void* ws, std::int64_t t,
                                            int part, bool valid, const int4 (&raw)[2], const int4& q,
                                            float scale_inv, std::uint32_t ue8m0_word) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int lane = threadIdx.x % 32;
  const std::int64_t c0 = static_cast<std::int64_t>(part) * kPartChannels + lane * kChannelsPerLane;
  char* row = l.staging_x(ws, parity, v.domain_rank, t);
  if (!a.use_fp8) {
    if (valid) {
      auto* dst = reinterpret_cast<int4*>(row + c0 * 2);
      ptx::st_na_v4(dst, raw[0]);
      ptx::st_na_v4(dst + 1, raw[1]);
    }
    return;
  }
  if (valid) ptx::st_na_v4(reinterpret_cast<int4*>(row + c0), q);
  std::uint32_t* scales = l.staging_scales(ws, parity, v.domain_rank, t);
  if (a.use_ue8m0) {
    if (lane == 0) scales[part] = ue8m0_word;  // a 512-channel part is exactly one word
  } else if (valid && lane % kLanesPerScaleBlock == 0) {
    scales[part * (kPartChannels / kLlScaleBlock) + lane / kLanesPerScaleBlock] = __float_as_uint(scale_inv);
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

template <typename Peers>
__device__ void send_rows(const LlDispatchArgs& a, int parity) {
  const LlLayout& l = a.layout;
  const int lane = threadIdx.x % 32;
  const int nle = l.num_local_experts;
  const int parts = static_cast<int>((l.hidden + kPartChannels - 1) / kPartChannels);
  const std::int64_t items = a.num_tokens * parts;
  const std::int64_t num_warps = static_cast<std::int64_t>(gridDim.x) * kLlWarps;
  for (std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32; item < items;
       item += num_warps) {
    const std::int64_t t = item / parts;
    const int part = static_cast<int>(item % parts);
    // Destinations: the distinct ranks of t's valid experts, one per lane of `firsts`.
    int rank = -1;
    if (lane < a.num_topk) {
      const std::int64_t e = ll_load_expert(a.topk_idx, a.idx_bytes, t * a.num_topk + lane);
      if (e >= 0 && e < l.num_experts) rank = static_cast<int>(e / nle);
      if (rank >= 0 && peer_masked(a.view, rank)) rank = -1;  // nothing goes to a masked rank
    }
    const unsigned same = __match_any_sync(kLlFullMask, rank);
    unsigned firsts = __ballot_sync(kLlFullMask, rank >= 0 && __ffs(same) - 1 == lane);
    if (firsts == 0) continue;  // warp-uniform: routed nowhere

    const std::int64_t c0 = static_cast<std::int64_t>(part) * kPartChannels + lane * kChannelsPerLane;
    const bool valid = c0 < l.hidden;  // whole 128-channel blocks are valid or not (hidden % 128 == 0)
    int4 raw[2] = {make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
    if (valid) {
      const auto* src = reinterpret_cast<const int4*>(a.x + t * l.hidden + c0);
      raw[0] = ptx::ld_na_v4(src);
      raw[1] = ptx::ld_na_v4(src + 1);
    }
    int4 q = make_int4(0, 0, 0, 0);
    float scale_inv = 0.0f;
    std::uint32_t word = 0;
    if (a.use_fp8) {
      q = cast_fp8(raw, a.round_scale, &scale_inv);
      // UE8M0: the exponent bytes of the part's 4 blocks, from lanes 0, 8, 16, 24.
      const std::uint32_t byte = valid ? (__float_as_uint(scale_inv) & kFloatExpMask) >> kFloatMantBits : 0u;
#pragma unroll
      for (int b = 0; b < kPartChannels / kLlScaleBlock; ++b)
        word |= __shfl_sync(kLlFullMask, byte, b * kLanesPerScaleBlock) << (8 * b);
    }
    // Stored straight into each destination reached by stores (this rank itself included); staged
    // once in this rank's own slot for those reached by puts, then put from there. Each destination
    // is counted once (per-peer telemetry).
    const int me = a.view.domain_rank;
    bool own_copy = false;
    unsigned by_put = 0;  // lanes of `firsts` whose rank is reached by a put
    for (unsigned left = firsts; left != 0; left &= left - 1) {
      const int src_lane = __ffs(left) - 1;
      const int d = __shfl_sync(kLlFullMask, rank, src_lane);
      if (ll_by_put<Peers>(a.view, d)) {
        by_put |= 1u << src_lane;
        own_copy = true;
      } else if (d == me) {
        own_copy = true;
      } else {
        store_piece(a, parity, Peers::target(a.view, a.workspace, d), t, part, valid, raw, q, scale_inv,
                    word);
      }
      count_row_sent(a, part, d);
    }
    if (own_copy) store_piece(a, parity, a.workspace, t, part, valid, raw, q, scale_inv, word);
    if constexpr (Peers::kStagesLocally) {
      if (by_put != 0) __syncwarp();  // warp-uniform: the staged piece is complete before its puts
      for (; by_put != 0; by_put &= by_put - 1) {
        const int d = __shfl_sync(kLlFullMask, rank, __ffs(by_put) - 1);
        put_piece<Peers>(a, parity, d, t, part);
      }
    }
  }
}

}  // namespace

}  // namespace epcomm
