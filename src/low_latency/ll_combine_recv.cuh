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

__device__ __forceinline__ std::int64_t first_reduce_item() {
  return static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32;
}

// The receive's items of one warp, (token, part) each, in the order it takes them, by index:
//  - kBySendSlot false (every block waits for the whole grid of every source): index i is item
//    (i / parts, i % parts), from first_reduce_item(), a grid of warps apart, below T * parts;
//  - kBySendSlot true (block b waits only for block b of every source, ll_combine.cuh): index i is
//    the combine's send item (t, s, part) (partial_at), from first_partial_item(), the partial
//    blocks' warps apart (partial_item_stride), taken only where its owner s is this rank: so each partial
//    block b sums was written by block b of its holder, as every rank runs the same grid.
// T is this call's token count; every index is warp-uniform.
template <bool kBySendSlot>
struct ReduceWalk {
  std::int64_t end;  // past the last index
  std::int64_t stride;
  __device__ explicit ReduceWalk(const LlCombineArgs& a)
      : end(a.num_tokens * partial_parts(a.layout) * (kBySendSlot ? a.view.num_domain_ranks : 1)),
        stride(kBySendSlot ? partial_item_stride() : static_cast<std::int64_t>(gridDim.x) * kLlWarps) {}
  // The first of the warp's indices at or after i (i being one of its indices or `end`): i itself
  // unless it is another owner's; `end` when none is left.
  __device__ __forceinline__ std::int64_t own(const LlCombineArgs& a, std::int64_t i) const {
    if constexpr (kBySendSlot)
      while (i < end && partial_at(a, i).s != a.view.domain_rank) i += stride;
    return i < end ? i : end;
  }
  __device__ __forceinline__ std::int64_t first(const LlCombineArgs& a) const {
    return own(a, kBySendSlot ? first_partial_item() : first_reduce_item());
  }
  __device__ __forceinline__ std::int64_t next(const LlCombineArgs& a, std::int64_t i) const {
    return i < end ? own(a, i + stride) : end;
  }
  // Index i's (token, part) as quot and rem; i < end.
  __device__ __forceinline__ LlSplit at(const LlCombineArgs& a, std::int64_t i) const {
    if constexpr (kBySendSlot) {
      const PartialAt p = partial_at(a, i);
      return {p.t, p.part};
    } else {
      return ll_split(i, a.layout.by_combine_parts);
    }
  }
};

// The receive's first loads, issued before the wait for the peers' completion signals (they read
// only this call's topk_idx and the mask, which no peer writes during the call): the warp's first
// two items, this lane's slot's expert ids for them, and the mask of the domain's ranks.
struct ReduceAhead {
  std::int64_t item = 0, next_item = 0;  // the warp's first two indices (ReduceWalk; `end`: none)
  std::int64_t expert = -1;              // topk_idx of this lane's slot of the first's token; -1: none
  std::int64_t next_expert = -1;         // the same for the second
  WarpMask mask;                         // the domain's mask
};

// This lane's slot's expert id for token t (-1 for t < 0, or past the slots).
__device__ __forceinline__ std::int64_t slot_expert(const LlCombineArgs& a, std::int64_t t) {
  const int lane = threadIdx.x % 32;
  if (t < 0 || lane >= a.num_topk) return -1;
  return ll_load_expert(a.topk_idx, a.idx_bytes, t * a.num_topk + lane);
}

template <bool kBySendSlot>
__device__ __forceinline__ ReduceAhead locate_reduce(const LlCombineArgs& a) {
  const ReduceWalk<kBySendSlot> walk(a);
  ReduceAhead ahead;
  ahead.item = walk.first(a);
  ahead.next_item = walk.next(a, ahead.item);
  ahead.expert = slot_expert(a, ahead.item < walk.end ? walk.at(a, ahead.item).quot : -1);
  ahead.next_expert = slot_expert(a, ahead.next_item < walk.end ? walk.at(a, ahead.next_item).quot : -1);
  ahead.mask = WarpMask::load(a.view);
  return ahead;
}

// The whole warp: the domain rank holding expert `e` of this lane's slot, R for none (no slot, an
// id out of range or -1, a masked holder: its slots behave as -1, no partial is taken from it).
__device__ __forceinline__ unsigned slot_holder(const LlCombineArgs& a, std::int64_t e,
                                                const WarpMask& mask) {
  const unsigned R = static_cast<unsigned>(a.view.num_domain_ranks);
  unsigned rank = R;
  if (e >= 0 && e < a.layout.num_experts)
    rank = static_cast<unsigned>(a.layout.by_local_experts.divide(static_cast<int>(e)));
  const bool masked = mask.masked(rank < R ? static_cast<int>(rank) : -1);
  return masked ? R : rank;
}

// One batch of an item's holders: the next kRankBatch distinct holders above `last` in ascending
// order (R past the last), with the loads of their partials issued.
struct HolderBatch {
  int holder[kRankBatch];
  int4 values[kRankBatch][2];
  int last = -1;  // the highest holder taken so far (-1: none yet)
};

// The whole warp: item (t, part)'s next batch after `last`; `rank` is this lane's slot's holder
// (slot_holder).
__device__ __forceinline__ HolderBatch load_holder_batch(const LlCombineArgs& a, int parity, int t, int part,
                                                         unsigned rank, int last) {
  const LlLayout& l = a.layout;
  const int R = a.view.num_domain_ranks;
  HolderBatch b;
  b.last = last;
#pragma unroll
  for (int k = 0; k < kRankBatch; ++k) {
    const unsigned candidate = static_cast<int>(rank) > b.last ? rank : static_cast<unsigned>(R);
    b.holder[k] = static_cast<int>(__reduce_min_sync(kLlFullMask, candidate));
    if (b.holder[k] < R) b.last = b.holder[k];
  }
#pragma unroll
  for (int k = 0; k < kRankBatch; ++k) {
    const float* partial = l.combine_partial(a.workspace, parity, t, b.holder[k] < R ? b.holder[k] : 0);
#pragma unroll
    for (int h = 0; h < 2; ++h)
      if (b.holder[k] < R && lane_channel(part, h) < l.hidden)
        b.values[k][h] = ptx::ld_v4(reinterpret_cast<const int4*>(partial + lane_channel(part, h)));
  }
  return b;
}

// acc += the batch's partials, holder by holder (ascending, as the reference); true when the
// batch was full (more holders may follow).
__device__ __forceinline__ bool add_holder_batch(const LlCombineArgs& a, int part, const HolderBatch& b,
                                                 float (&acc)[2][4]) {
  const int R = a.view.num_domain_ranks;
#pragma unroll
  for (int k = 0; k < kRankBatch; ++k) {
    if (b.holder[k] >= R) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (lane_channel(part, h) >= a.layout.hidden) continue;
      const int* words = reinterpret_cast<const int*>(&b.values[k][h]);
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[h][i] = __fadd_rn(acc[h][i], __int_as_float(words[i]));
    }
    // Per-peer telemetry: each other holder's partial row of the token, counted with its part 0.
    if (part == 0 && threadIdx.x % 32 == 0 && b.holder[k] != a.view.domain_rank)
      count_traffic(a.view, OpId::kLlCombine, b.holder[k], 0,
                    sizeof(float) * static_cast<std::uint64_t>(a.layout.hidden));
  }
  return b.holder[kRankBatch - 1] < R;
}

// NOTE: every partial read here is summed and stored before the block's credit (ll_give_credits:
// an unordered add); no read of the staging may be left in flight past it.
// `ahead` is locate_reduce()'s, from before the wait for the sources; each later item's expert ids
// are loaded one item ahead, and its first batch of partials is loaded while this item is summed
// (at `ll-dsv3` a warp's second item cost one more round trip after the first's sum, NOTES 11.25).
template <bool kBySendSlot>
__device__ void reduce_partials(const LlCombineArgs& a, int parity, const ReduceAhead& ahead) {
  const LlLayout& l = a.layout;
  const ReduceWalk<kBySendSlot> walk(a);
  std::uint16_t* out = a.out;
  if (ahead.item >= walk.end) return;  // warp-uniform
  unsigned rank = slot_holder(a, ahead.expert, ahead.mask);
  LlSplit tp = walk.at(a, ahead.item);
  HolderBatch cur = load_holder_batch(a, parity, tp.quot, tp.rem, rank, -1);
  std::int64_t next_item = ahead.next_item, next_expert = ahead.next_expert;
  for (;;) {
    const bool more = next_item < walk.end;  // warp-uniform
    // The next item's first batch goes out before this one is summed.
    HolderBatch next;
    unsigned next_rank = 0;
    LlSplit next_tp{0, 0};
    std::int64_t after = walk.end;
    if (more) {
      next_tp = walk.at(a, next_item);
      next_rank = slot_holder(a, next_expert, ahead.mask);
      next = load_holder_batch(a, parity, next_tp.quot, next_tp.rem, next_rank, -1);
      after = walk.next(a, next_item);
      next_expert = slot_expert(a, after < walk.end ? walk.at(a, after).quot : -1);
    }
    const std::int64_t t = tp.quot;
    const int part = tp.rem;
    float acc[2][4];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[h][i] = 0.0f;
    // Holders past the first batch (more than kRankBatch of them): one batch at a time.
    while (add_holder_batch(a, part, cur, acc))
      cur = load_holder_batch(a, parity, tp.quot, part, rank, cur.last);
    store_bf16_part(out + t * l.hidden, l.hidden, part, acc);
    if (!more) break;
    next_item = after;
    tp = next_tp;
    rank = next_rank;
    cur = next;
  }
}

}  // namespace

}  // namespace epcomm
