// Low-latency combine, receive phase (ll_combine.cuh has the kernel; ll_args.hpp, step 8, the
// protocol): the owner adds the partial sums of the ranks holding its tokens' experts and rounds
// once to BF16. Definitions in an unnamed namespace, one private copy per including translation
// unit.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_combine_parts.cuh"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

constexpr int kRankBatch = 4;  // partials one lane loads at once

// The receive's first loads, issued before the wait for the peers' done signals (they read only
// this call's topk_idx and the mask, which no peer writes during the call): this lane's slot's
// expert id for the warp's first item, and the mask of the domain's ranks.
struct ReduceAhead {
  std::int64_t expert = -1;  // topk_idx of this lane's slot of the item's token; -1 for none
  unsigned masked_bits = 0;  // bit j: domain rank 32 * j + lane is masked
};
static_assert(kLlMaxRanks <= 32 * 32, "a lane's mask word covers its ranks");

__device__ __forceinline__ std::int64_t first_reduce_item() {
  return static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32;
}

// This lane's slot's expert id for receive item `item` = (token, part); -1 past the items or the
// slots.
__device__ __forceinline__ std::int64_t slot_expert(const LlCombineArgs& a, std::int64_t item, int parts) {
  const int lane = threadIdx.x % 32;
  if (item >= a.num_tokens * parts || lane >= a.num_topk) return -1;
  return ll_load_expert(a.topk_idx, a.idx_bytes, ll_split(item, parts).quot * a.num_topk + lane);
}

__device__ __forceinline__ ReduceAhead locate_reduce(const LlCombineArgs& a) {
  const int parts = partial_parts(a.layout);
  ReduceAhead ahead;
  ahead.expert = slot_expert(a, first_reduce_item(), parts);
  if (a.view.masked != nullptr)
    for (int j = 0; 32 * j < a.view.num_domain_ranks; ++j) {
      const int r = 32 * j + static_cast<int>(threadIdx.x % 32);
      if (r < a.view.num_domain_ranks && peer_masked(a.view, r)) ahead.masked_bits |= 1u << j;
    }
  return ahead;
}

// The whole warp: the domain rank holding expert `e` of this lane's slot, R for none (no slot, an
// id out of range or -1, a masked holder: its slots behave as -1, no partial is taken from it).
__device__ __forceinline__ unsigned slot_holder(const LlCombineArgs& a, std::int64_t e,
                                                unsigned masked_bits) {
  const unsigned R = static_cast<unsigned>(a.view.num_domain_ranks);
  unsigned rank = R;
  if (e >= 0 && e < a.layout.num_experts)
    rank = static_cast<unsigned>(static_cast<int>(e) / a.layout.num_local_experts);
  const unsigned asked = rank < R ? rank : 0u;
  const bool masked =
      ((__shfl_sync(kLlFullMask, masked_bits, static_cast<int>(asked % 32)) >> (asked / 32)) & 1u) != 0;
  return rank < R && masked ? R : rank;
}

// NOTE: every partial read here is summed and stored before the block's credit (ll_give_credits:
// an unordered add); no read of the staging may be left in flight past it.
// `ahead` is locate_reduce()'s, from before the done wait; each later item's expert ids are loaded
// one item ahead, so an item's only round trip is its partials'.
__device__ void reduce_partials(const LlCombineArgs& a, int parity, const ReduceAhead& ahead) {
  const LlLayout& l = a.layout;
  void* ws = a.workspace;
  const int R = a.view.num_domain_ranks, lane = threadIdx.x % 32;
  const int parts = partial_parts(l);
  const std::int64_t items = a.num_tokens * parts;
  const std::int64_t num_warps = static_cast<std::int64_t>(gridDim.x) * kLlWarps;
  std::uint16_t* out = a.out;
  std::int64_t expert = ahead.expert;
  for (std::int64_t item = first_reduce_item(); item < items; item += num_warps) {
    const std::int64_t next_expert = slot_expert(a, item + num_warps, parts);
    const LlSplit tp = ll_split(item, parts);
    const std::int64_t t = tp.quot;
    const int part = tp.rem;
    const unsigned rank = slot_holder(a, expert, ahead.masked_bits);
    expert = next_expert;
    bool valid[2];
    valid[0] = lane_channel(part, 0) < l.hidden;
    valid[1] = lane_channel(part, 1) < l.hidden;
    float acc[2][4];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[h][i] = 0.0f;
    // The distinct holders in ascending order, kRankBatch at a time: loads first, then the sums.
    int last = -1;
    bool more = true;
    while (more) {
      int holder[kRankBatch];
      bool has[kRankBatch];
#pragma unroll
      for (int b = 0; b < kRankBatch; ++b) {
        const unsigned candidate = static_cast<int>(rank) > last ? rank : static_cast<unsigned>(R);
        holder[b] = static_cast<int>(__reduce_min_sync(kLlFullMask, candidate));
        has[b] = holder[b] < R;
        if (has[b]) last = holder[b];
      }
      int4 part_values[kRankBatch][2];
#pragma unroll
      for (int b = 0; b < kRankBatch; ++b) {
        const float* partial = l.combine_partial(ws, parity, t, has[b] ? holder[b] : 0);
#pragma unroll
        for (int h = 0; h < 2; ++h)
          if (has[b] && valid[h])
            part_values[b][h] = ptx::ld_v4(reinterpret_cast<const int4*>(partial + lane_channel(part, h)));
      }
#pragma unroll
      for (int b = 0; b < kRankBatch; ++b) {
        if (!has[b]) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int* words = reinterpret_cast<const int*>(&part_values[b][h]);
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[h][i] = __fadd_rn(acc[h][i], __int_as_float(words[i]));
        }
      }
      // Per-peer telemetry: each other holder's partial row of t, counted with its part 0.
#pragma unroll
      for (int b = 0; b < kRankBatch; ++b) {
        if (has[b] && part == 0 && lane == 0 && holder[b] != a.view.domain_rank)
          count_traffic(a.view, OpId::kLlCombine, holder[b], 0,
                        sizeof(float) * static_cast<std::uint64_t>(l.hidden));
      }
      more = has[kRankBatch - 1];
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (!valid[h]) continue;
      uint2 bits;
      bits.x = static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(acc[h][0]))) |
               (static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(acc[h][1]))) << 16);
      bits.y = static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(acc[h][2]))) |
               (static_cast<std::uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(acc[h][3]))) << 16);
      ptx::st_na_v2(reinterpret_cast<uint2*>(out + t * l.hidden + lane_channel(part, h)), bits);
    }
  }
}

}  // namespace

}  // namespace epcomm
