// Low-latency dispatch, the kernel family's body (see ll_args.hpp for the protocol), templated on
// how peers are reached (ll_peers.cuh). Included by exactly the translation units that instantiate
// it: ll_dispatch.cu (CUDA IPC) and transport/nvshmem_ll_kernels.cu (NVSHMEM); its definitions sit
// in an unnamed namespace, one private copy per such unit.
//
// Send phase: warp w of the grid takes (token, 512-channel part) items; it finds the token's
// destination ranks (distinct ranks of its valid experts), loads 16 channels per lane, casts them
// to FP8 in registers when asked (the 8 lanes of a 128-channel block reduce the amax by shuffles),
// and stores the piece and its scales once into each destination's staging. Receive phase: blocks
// take local experts (several blocks share one expert when there are more blocks than experts):
// per expert, two passes over the received top-k rows give every selection its packed row, and
// the warp that finds a selection copies its row into recv_x.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/ll_args.hpp"
#include "kernels/ll_sync.cuh"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kChannelsPerLane = 16;                                   // one lane: 2 x 16 bytes of BF16
constexpr int kPartChannels = 32 * kChannelsPerLane;                   // 512 = one UE8M0 word of scales
constexpr int kLanesPerScaleBlock = kLlScaleBlock / kChannelsPerLane;  // 8 lanes share one scale
constexpr int kCopyUnroll = 8;                                         // 16-byte loads in flight per lane
constexpr float kFp8Max = 448.0f;                                      // largest finite E4M3 value
constexpr float kAmaxFloor = 1e-4f;                                    // amax is clamped from below
constexpr std::uint32_t kFloatExpMask = 0x7f800000u;
constexpr std::uint32_t kFloatMantMask = 0x007fffffu;
constexpr int kFloatMantBits = 23;

// ---- send phase -----------------------------------------------------------------------------

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

// Every receiver gets every token's top-k row (it finds its experts' selections there) and the
// header of this rank's operation. Entries outside [-1, E) are reported and sent as -1. A policy
// that stages locally writes only this rank's own copy; publish_topk_rows puts it to the peers.
template <typename Peers>
__device__ void send_topk_rows(const LlDispatchArgs& a, int parity) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int R = v.num_domain_ranks, me = v.domain_rank;
  const std::int64_t n = a.num_tokens * a.num_topk;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::int64_t t = i / a.num_topk;
    const int j = static_cast<int>(i % a.num_topk);
    std::int64_t e = ll_load_expert(a.topk_idx, a.idx_bytes, i);
    if (e < -1 || e >= a.num_experts) {
      report_failure(v.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, v.rank, -1, e,
                     t);
      e = -1;
    }
    if constexpr (Peers::kStagesLocally) {
      l.staging_topk(a.workspace, parity, me, t)[j] = static_cast<std::int32_t>(e);
    } else {
      for (int d = 0; d < R; ++d)
        l.staging_topk(Peers::target(v, a.workspace, d), parity, me, t)[j] = static_cast<std::int32_t>(e);
    }
  }
  if (blockIdx.x == 0) {
    const int num_targets = Peers::kStagesLocally ? 1 : R;
    for (int i = threadIdx.x; i < num_targets; i += blockDim.x) {
      const int d = Peers::kStagesLocally ? me : i;
      LlControl* c = l.control_of(Peers::target(v, a.workspace, d), kLlKindDispatch);
      c->num_tokens[parity][me] = static_cast<std::int32_t>(a.num_tokens);
      c->num_topk[parity][me] = a.num_topk;
    }
  }
}

// Staging policies only, by the last send block once the whole grid has staged: puts this rank's
// top-k rows and header to every peer, a warp per peer (one put of all T_s rows, which are
// contiguous at stride max_topk, and the two header words).
template <typename Peers>
__device__ void publish_topk_rows(const LlDispatchArgs& a, int parity) {
  if constexpr (Peers::kStagesLocally) {
    const LlLayout& l = a.layout;
    const DomainView& v = a.view;
    const int me = v.domain_rank, lane = threadIdx.x % 32;
    LlControl* c = l.control_of(a.workspace, kLlKindDispatch);
    std::int32_t* rows = l.staging_topk(a.workspace, parity, me, 0);
    const std::size_t row_bytes = static_cast<std::size_t>(a.num_tokens) * l.max_topk * sizeof(std::int32_t);
    for (int d = static_cast<int>(threadIdx.x / 32); d < v.num_domain_ranks; d += kLlWarps) {
      if (d == me) continue;  // this rank's own copy is already in place
      if (row_bytes > 0) Peers::put_warp(v, rows, rows, row_bytes, d);
      if (lane == 0) {
        Peers::put(v, &c->num_tokens[parity][me], &c->num_tokens[parity][me], sizeof(std::int32_t), d);
        Peers::put(v, &c->num_topk[parity][me], &c->num_topk[parity][me], sizeof(std::int32_t), d);
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
      if (e >= 0 && e < a.num_experts) rank = static_cast<int>(e / nle);
    }
    const unsigned same = __match_any_sync(kLlFullMask, rank);
    unsigned firsts = __ballot_sync(kLlFullMask, rank >= 0 && __ffs(same) - 1 == lane);
    if (firsts == 0) continue;  // warp-uniform: routed nowhere

    const std::int64_t c0 = static_cast<std::int64_t>(part) * kPartChannels + lane * kChannelsPerLane;
    const bool valid = c0 < l.hidden;  // whole 128-channel blocks are valid or not (hidden % 128 == 0)
    int4 raw[2] = {make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
    if (valid) {
      const auto* src = reinterpret_cast<const int4*>(a.x + t * l.hidden + c0);
      raw[0] = ptx::ld_nc_na_v4(src);
      raw[1] = ptx::ld_nc_na_v4(src + 1);
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
    if constexpr (Peers::kStagesLocally) {
      // Staged once, in this rank's own slot (where it receives the token itself, if at all),
      // then put from there to every other destination.
      store_piece(a, parity, a.workspace, t, part, valid, raw, q, scale_inv, word);
      __syncwarp();
      const int me = a.view.domain_rank;
      while (firsts != 0) {
        const int src_lane = __ffs(firsts) - 1;
        firsts &= firsts - 1;
        const int d = __shfl_sync(kLlFullMask, rank, src_lane);
        if (d != me) put_piece<Peers>(a, parity, d, t, part);
      }
    } else {
      while (firsts != 0) {
        const int src_lane = __ffs(firsts) - 1;
        firsts &= firsts - 1;
        const int d = __shfl_sync(kLlFullMask, rank, src_lane);
        store_piece(a, parity, Peers::target(a.view, a.workspace, d), t, part, valid, raw, q, scale_inv,
                    word);
      }
    }
  }
}

// ---- receive phase --------------------------------------------------------------------------

// The receive phase splits each block's warps into `count` equal groups (1, 2 or 4), each with its
// own experts, shared counts and named barrier, so a grid with fewer blocks than local experts still
// receives them all in one round (ll-dsv3: 144 experts, 132 blocks).
constexpr int kMaxRecvGroups = 4;
struct RecvGroup {
  int index;   // group within the block
  int count;   // groups per block
  int warps;   // warps per group
  int warp;    // warp within the group
  int thread;  // thread within the group
  __device__ explicit RecvGroup(int groups)
      : index(static_cast<int>(threadIdx.x / 32) / (kLlWarps / groups)),
        count(groups),
        warps(kLlWarps / groups),
        warp(static_cast<int>(threadIdx.x / 32) % (kLlWarps / groups)),
        thread(static_cast<int>(threadIdx.x) % (kLlWarps / groups * 32)) {}
  // Barrier of the group's threads only (named barrier index + 1; 0 is __syncthreads).
  __device__ void sync() const {
    asm volatile("bar.sync %0, %1;" ::"r"(index + 1), "r"(warps * 32) : "memory");
  }
};

struct RecvShared {
  std::int32_t num_tokens[kMaxDomainRanks];  // T_s of each source (clamped to [0, T])
  std::int32_t num_topk[kMaxDomainRanks];    // k of each source (clamped to [0, K])
  std::int32_t total[kMaxDomainRanks];       // selections of the expert from each source
  std::int32_t begin[kMaxDomainRanks];       // first packed row of each source
  std::int32_t rows;                         // packed rows of the expert
};

// Selections of expert `expert` (global id) by token t of source s: how many of its slots name it.
__device__ __forceinline__ int count_selections(const LlLayout& l, void* ws, int parity, int s,
                                                std::int64_t t, const RecvShared& sh, std::int32_t expert) {
  if (t >= sh.num_tokens[s]) return 0;
  const std::int32_t* row = l.staging_topk(ws, parity, s, t);
  const int k = sh.num_topk[s];
  // NOTE: unrolled to the largest top-k with predicated loads, so all k loads are in flight at
  // once (a loop over a runtime k issues them a few at a time: several round trips per token).
  std::int32_t ids[kLlMaxTopk];
#pragma unroll
  for (int j = 0; j < kLlMaxTopk; ++j) ids[j] = j < k ? row[j] : -1;
  int m = 0;
#pragma unroll
  for (int j = 0; j < kLlMaxTopk; ++j) m += ids[j] == expert ? 1 : 0;
  return m;
}

// One warp copies staged token t of source s into packed row `row` of local expert e.
__device__ void copy_row(const LlDispatchArgs& a, int parity, int s, std::int64_t t, int e, std::int64_t row,
                         int slot) {
  const LlLayout& l = a.layout;
  void* ws = a.workspace;
  const int lane = threadIdx.x % 32;
  const std::int64_t row_bytes = a.use_fp8 ? l.hidden : l.hidden * 2;
  const std::int64_t out_row = static_cast<std::int64_t>(e) * l.capacity + row;
  const auto* src = reinterpret_cast<const int4*>(l.staging_x(ws, parity, s, t));
  auto* dst = reinterpret_cast<int4*>(l.recv_x(ws, a.half) + out_row * row_bytes);
  const int pieces = static_cast<int>(row_bytes / 16);
  for (int base = 0; base < pieces; base += 32 * kCopyUnroll) {
    int4 r[kCopyUnroll];
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int i = base + u * 32 + lane;
      if (i < pieces) r[u] = ptx::ld_v4(src + i);
    }
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int i = base + u * 32 + lane;
      if (i < pieces) ptx::st_na_v4(dst + i, r[u]);
    }
  }
  // Scales transposed: [nle][words][capacity].
  const int words = !a.use_fp8 ? 0 : a.use_ue8m0 ? l.num_scale_words : l.num_scales;
  const std::uint32_t* src_scales = l.staging_scales(ws, parity, s, t);
  std::uint32_t* dst_scales = l.recv_scales(ws, a.half);
  for (int w = lane; w < words; w += 32)
    dst_scales[(static_cast<std::int64_t>(e) * words + w) * l.capacity + row] = src_scales[w];
  if (lane == 0) {
    l.src_info(ws, a.half)[out_row] = static_cast<std::int32_t>(t);
    l.route(ws, a.half)[out_row] = ll_pack_route(s, slot);
  }
}

// Receives local expert e. Groups share it: group `share` of `num_shares` copies the rows
// congruent to `share`; share 0 also writes layout_range, recv_count and the statistics. Every
// thread of the group calls it.
__device__ void receive_expert(const LlDispatchArgs& a, RecvShared& sh, std::int32_t* chunk, int parity,
                               int e, int share, int num_shares, const RecvGroup& g) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  void* ws = a.workspace;
  const int R = v.num_domain_ranks;
  const int C = static_cast<int>((l.max_tokens + 31) / 32);  // 32-token chunks per source
  const int warp = g.warp, lane = threadIdx.x % 32;
  const std::int32_t expert = v.rank * l.num_local_experts + e;

  // Pass 1: selections per (source, chunk).
  for (int item = warp; item < R * C; item += g.warps) {
    const int s = item / C;
    const std::int64_t t = static_cast<std::int64_t>(item % C) * 32 + lane;
    const int m = count_selections(l, ws, parity, s, t, sh, expert);
    const int sum = __reduce_add_sync(kLlFullMask, m);
    if (lane == 0) chunk[item] = sum;
  }
  g.sync();
  // Exclusive prefix over each source's chunks (a warp per source) and each source's total.
  for (int s = warp; s < R; s += g.warps) {
    std::int32_t carry = 0;
    for (int c0 = 0; c0 < C; c0 += 32) {
      const int c = c0 + lane;
      const std::int32_t n = c < C ? chunk[s * C + c] : 0;
      std::int32_t incl = n;
      for (int off = 1; off < 32; off <<= 1) {
        const std::int32_t y = __shfl_up_sync(kLlFullMask, incl, off);
        if (lane >= off) incl += y;
      }
      if (c < C) chunk[s * C + c] = carry + incl - n;
      carry += __shfl_sync(kLlFullMask, incl, 31);
    }
    if (lane == 0) sh.total[s] = carry;
  }
  g.sync();
  if (g.thread == 0) {
    std::int32_t rows = 0;
    for (int s = 0; s < R; ++s) {
      sh.begin[s] = rows;
      std::int32_t n = sh.total[s];
      if (n > l.max_tokens) {
        // NOTE: a source owns T rows of each expert; only a token naming an expert twice can
        // exceed them. The extra rows are dropped, never written out of bounds.
        if (share == 0)
          report_failure(v.status, StatusCode::kRegionTooSmall, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         v.domain_base_rank + s, l.max_tokens, n);
        n = static_cast<std::int32_t>(l.max_tokens);
      }
      rows += n;
    }
    sh.rows = rows;
  }
  g.sync();
  if (share == 0) {
    for (int s = g.thread; s < R; s += g.warps * 32) {
      const std::int64_t n = min(static_cast<std::int64_t>(sh.total[s]), l.max_tokens);
      l.layout_range(ws, a.half)[static_cast<std::int64_t>(e) * R + s] =
          (static_cast<std::int64_t>(sh.begin[s]) << 32) | n;
    }
    if (g.thread == 0) {
      l.recv_count(ws, a.half)[e] = sh.rows;
      if (a.stats != nullptr) atomicAdd(a.stats + e, sh.rows);
    }
  }

  // Pass 2: each selection's packed row; the warp that finds it copies it (if this share owns it).
  for (int item = warp; item < R * C; item += g.warps) {
    const int s = item / C;
    const std::int64_t chunk_first = static_cast<std::int64_t>(item % C) * 32;
    const int m = count_selections(l, ws, parity, s, chunk_first + lane, sh, expert);
    std::int32_t incl = m;
    for (int off = 1; off < 32; off <<= 1) {
      const std::int32_t y = __shfl_up_sync(kLlFullMask, incl, off);
      if (lane >= off) incl += y;
    }
    const std::int32_t within = chunk[item] + incl - m;  // index among source s's selections
    unsigned todo = __ballot_sync(kLlFullMask, m > 0);
    while (todo != 0) {
      const int holder = __ffs(todo) - 1;
      todo &= todo - 1;
      const std::int64_t t = chunk_first + holder;
      std::int32_t next = __shfl_sync(kLlFullMask, within, holder);
      const std::int32_t slot_expert = lane < sh.num_topk[s] ? l.staging_topk(ws, parity, s, t)[lane] : -1;
      unsigned slots = __ballot_sync(kLlFullMask, slot_expert == expert);
      while (slots != 0) {
        const int slot = __ffs(slots) - 1;
        slots &= slots - 1;
        const std::int32_t n = next++;
        if (n >= l.max_tokens) continue;
        const std::int64_t row = sh.begin[s] + n;
        if (row % num_shares == share) copy_row(a, parity, s, t, e, row, slot);
      }
    }
  }
  g.sync();  // chunk[] and sh are reused by the group's next expert
}

__device__ void run_receive(const LlDispatchArgs& a, int parity, std::int32_t* chunks) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  __shared__ RecvShared shared[kMaxRecvGroups];
  const RecvGroup g(a.recv_groups);
  RecvShared& sh = shared[g.index];
  const int R = v.num_domain_ranks;
  std::int32_t* chunk = chunks + static_cast<std::size_t>(g.index) * R * ((l.max_tokens + 31) / 32);
  const LlControl* mine = l.control_of(a.workspace, kLlKindDispatch);
  for (int s = g.thread; s < R; s += g.warps * 32) {
    const volatile LlControl* c = mine;
    sh.num_tokens[s] = static_cast<std::int32_t>(
        min(max(static_cast<std::int64_t>(c->num_tokens[parity][s]), std::int64_t{0}), l.max_tokens));
    sh.num_topk[s] = min(max(c->num_topk[parity][s], 0), l.max_topk);
  }
  g.sync();
  // Group `id` of `groups` in the grid takes its experts.
  const int nle = l.num_local_experts, groups = static_cast<int>(gridDim.x) * g.count;
  const int id = static_cast<int>(blockIdx.x) * g.count + g.index;
  if (groups >= nle) {
    const int shares = groups / nle;
    if (id < nle * shares) receive_expert(a, sh, chunk, parity, id / shares, id % shares, shares, g);
  } else {
    for (int e = id; e < nle; e += groups) receive_expert(a, sh, chunk, parity, e, 0, 1, g);
  }
}

template <typename Peers>
__global__ void __launch_bounds__(kLlThreads, 1) ll_dispatch_kernel(LlDispatchArgs a) {
  extern __shared__ std::int32_t chunk[];  // [recv_groups][R][ceil(T/32)]
  ll_run_phases<Peers>(
      a.view, a.layout, a.workspace, kLlKindDispatch, OpId::kLlDispatch, a.phases, a.half, a.trace,
      [&](int parity) {
        send_topk_rows<Peers>(a, parity);
        send_rows<Peers>(a, parity);
      },
      [&](int parity) { publish_topk_rows<Peers>(a, parity); },
      [&](int parity) { run_receive(a, parity, chunk); });
}

// The launcher of the instantiation for `Peers`.
template <typename Peers>
void launch_ll_dispatch_with(const LlDispatchArgs& args, int num_blocks, void* stream) {
  // Receive groups per block: enough for every local expert in one round (up to kMaxRecvGroups),
  // as long as their counts fit the shared memory one group is checked against (ll_checks.cpp).
  const std::size_t group_smem = ll_dispatch_smem_bytes(args.layout.num_ranks, args.layout.max_tokens);
  int groups = 1;
  while (groups < kMaxRecvGroups && groups * num_blocks < args.layout.num_local_experts &&
         2 * groups * group_smem <= kLlMaxSharedBytes)
    groups *= 2;
  LlDispatchArgs a = args;
  a.recv_groups = groups;
  const std::size_t smem = static_cast<std::size_t>(groups) * group_smem;
  if (smem > 48 * 1024)
    EPCOMM_CUDA_CHECK(cudaFuncSetAttribute(
        ll_dispatch_kernel<Peers>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  ll_dispatch_kernel<Peers><<<num_blocks, kLlThreads, smem, static_cast<cudaStream_t>(stream)>>>(a);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace

}  // namespace epcomm
