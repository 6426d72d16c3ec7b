// Low-latency combine: how a warp item's channels are laid out over the lanes, and which warp takes
// which send item, shared by the send phase (ll_combine.cuh) and the receive phase
// (ll_combine_recv.cuh). Definitions in an unnamed namespace, one private copy per including
// translation unit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_layout.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// A warp item is 256 channels, two halves of 128; a lane takes 4 channels of each half (8 bytes of
// BF16 in, 16 of float out), so every warp-wide load and store instruction covers one contiguous
// span (a lane with 8 adjacent channels would store its 32 bytes as two 16-byte halves, each
// instruction writing every other 16 bytes: twice the NVLink transactions).
constexpr int kHalfChannels = 32 * 4;
constexpr int kPartChannels = 2 * kHalfChannels;
static_assert(kPartChannels == kLlCombinePartChannels, "LlLayout::by_combine_parts divides by it");

// The parts of a row: a warp item each, in send and receive alike (LlLayout::make sets the divisor
// by it, ceil(hidden / kPartChannels)).
__device__ __forceinline__ int partial_parts(const LlLayout& l) {
  return l.by_combine_parts.divisor();
}

// The first channel of half h of part `part` that this lane takes.
__device__ __forceinline__ std::int64_t lane_channel(int part, int h) {
  return static_cast<std::int64_t>(part) * kPartChannels + h * kHalfChannels + (threadIdx.x % 32) * 4;
}

// Part `part` of a BF16 row of `hidden` channels (a multiple of 128) asked into L2, a 128-byte line
// (64 channels) at a time: later loads of it take one L2 round trip. No register holds it and
// nothing waits for it.
__device__ __forceinline__ void prefetch_bf16_part(const std::uint16_t* row, std::int64_t hidden, int part) {
  const std::int64_t first = static_cast<std::int64_t>(part) * kPartChannels;
#pragma unroll
  for (int c = 0; c < kPartChannels; c += 64)
    if (first + c < hidden) ptx::prefetch_l2(row + first + c);
}

// sum += w * piece, channel by channel: this lane's 4 BF16 channels of each half of a row's part
// (`piece[h]`), as a holder sums its slots (pushed) or an owner its holders' rows (pulled).
// NOTE: explicit roundings (no FMA contraction), as the reference.
__device__ __forceinline__ void add_weighted_piece(float (&sum)[2][4], const uint2 (&piece)[2], float w) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&piece[h]);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float2 f = __bfloat1622float2(pairs[i]);
      sum[h][2 * i] = __fadd_rn(sum[h][2 * i], __fmul_rn(w, f.x));
      sum[h][2 * i + 1] = __fadd_rn(sum[h][2 * i + 1], __fmul_rn(w, f.y));
    }
  }
}

// The whole warp: this lane's sums of part `part` (acc[h]: its 4 channels of half h) rounded once to
// BF16 and stored into `row` (hidden channels).
__device__ __forceinline__ void store_bf16_part(std::uint16_t* row, std::int64_t hidden, int part,
                                                const float (&acc)[2][4]) {
  const auto bf16 = [](float f) {
    return static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(f)));
  };
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (lane_channel(part, h) >= hidden) continue;
    const uint2 bits{bf16(acc[h][0]) | (bf16(acc[h][1]) << 16), bf16(acc[h][2]) | (bf16(acc[h][3]) << 16)};
    ptx::st_na_v2(reinterpret_cast<uint2*>(row + lane_channel(part, h)), bits);
  }
}

__device__ __forceinline__ int4 float4_bits(const float* f) {
  return make_int4(__float_as_int(f[0]), __float_as_int(f[1]), __float_as_int(f[2]), __float_as_int(f[3]));
}

// A holder's send items run token-major, sources inside: item = (t * R + s) * parts + part
// (partial_parts). At any moment the grid writes partials both to this rank and over NVLink
// (source-major order left NVLink idle for one half of the phase).
// Warp w of block b first takes warp slot ll_partial_warp_slot(b, w), then every
// partial_item_stride() after it; a warp of a block with no slot, kLlNoPartialItem (past any item).
constexpr std::int64_t kLlNoPartialItem = std::int64_t{1} << 60;
__device__ __forceinline__ std::int64_t first_partial_item() {
  const int slot = ll_partial_warp_slot(static_cast<int>(blockIdx.x), static_cast<int>(threadIdx.x / 32),
                                        static_cast<int>(gridDim.x));
  return slot < 0 ? kLlNoPartialItem : slot;
}
// The warps that take send items: the partial blocks' (ll_partial_blocks).
__device__ __forceinline__ std::int64_t partial_item_stride() {
  return static_cast<std::int64_t>(ll_partial_blocks(static_cast<int>(gridDim.x))) * kLlWarps;
}

// Item `item` = (t * R + s) * parts + part taken apart (by the host's divisors).
struct PartialAt {
  int t, s, part;
};
__device__ __forceinline__ PartialAt partial_at(const LlCombineArgs& a, std::int64_t item) {
  const LlSplit token_source = ll_split(item, a.layout.by_combine_parts);
  const LlSplit t_s = ll_split(token_source.quot, a.by_domain_ranks);
  return {t_s.quot, t_s.rem, token_source.rem};
}

}  // namespace

}  // namespace epcomm
