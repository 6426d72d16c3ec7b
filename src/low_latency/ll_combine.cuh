// Low-latency combine, the kernel family's body (see ll_args.hpp for the protocol, steps 7 and 8),
// templated on how peers are reached (ll_peers.cuh). Included by exactly the translation units
// that instantiate it: ll_combine.cu (CUDA IPC) and transport/nvshmem_ll_combine.cu (NVSHMEM); its
// definitions sit in an unnamed namespace, one private copy per such unit.
//
// Send phase: block 0 first writes this rank's tokens' top-k weights into every holder, each
// tagged with the operation, and signals them (the first 2048 weights loaded before the credit
// wait); a holder reached by stores reads a weight as soon as its tag is this operation's. Then, as a holder,
// warps take (source, token, 256-channel part) items (with CUDA IPC each warp's first item, but block 0's, is
// located and its rows' loads issued before the credit wait, and a warp's next item's rows load while
// it sums this one): a token with rows here (the dispatch's token_rows) has its weighted rows summed here, in
// slot order, in float32 from 0, and that partial sum goes to the token's owner, into the owner's
// slot for this holder. A token
// crosses NVLink back once per holder (in float32) instead of once per selected expert (BF16).
// Receive phase (ll_combine_recv.cuh): warps take (token, 256-channel part) items; the owner adds
// the partials of the ranks holding its token's experts in rank order, in float32 from 0, and
// rounds once to BF16. With CUDA IPC each block flags its own partials in every owner, and block b
// of an owner waits only for block b (and block 0) of every holder, then sums the items block b of
// each holder summed for it: a block's receive starts when its own items have landed, not when the
// grid's last block has sent (NOTES 11.64). With puts, every block waits for the grid's done
// signals. The expert ids of each warp's first items are loaded before that wait, each next item's
// while this one is summed.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "core/cuda_check.hpp"
#include "core/pdl.cuh"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_combine_parts.cuh"
#include "low_latency/ll_combine_recv.cuh"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// ---- send phase -----------------------------------------------------------------------------

// The first weights each thread of block 0 sends (T * k up to kWeightsAhead * kLlThreads of them),
// loaded before the credit wait: every holder waits for block 0's weights before its first sum.
constexpr int kWeightsAhead = 4;
struct WeightsAhead {
  float w[kWeightsAhead] = {};
};

__device__ __forceinline__ WeightsAhead load_weights_ahead(const LlCombineArgs& a) {
  WeightsAhead ahead;
  const std::int64_t n = a.num_tokens * a.num_topk;
#pragma unroll
  for (int u = 0; u < kWeightsAhead; ++u) {
    const std::int64_t i = threadIdx.x + static_cast<std::int64_t>(u) * blockDim.x;
    if (i < n) ahead.w[u] = a.topk_weights[i];
  }
  return ahead;
}

// Block 0: this rank's [T_s, k] weights go to every holder's combine_weights[p][me], each tagged
// with seq (ll_tag_word: stored whole into the holders reached by stores, which read them as soon
// as they land; for the others into its own copy, then one put each, and then weights[p][me] = seq
// is signalled to them, as a put is not one word). The first ones come from `ahead`.
template <typename Peers>
__device__ void send_weights(const LlCombineArgs& a, int parity, std::uint64_t seq,
                             const WeightsAhead& ahead) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int R = v.num_domain_ranks, me = v.domain_rank, K = l.max_topk;
  const std::int64_t n = a.num_tokens * a.num_topk;
  // Stored into every rank reached by stores (this rank's own copy is the puts' source).
  const int first_target = Peers::first_direct(v);
  const int end_target = Peers::end_direct(v);
  const auto store = [&](std::int64_t i, float w) {
    const LlSplit tj = ll_split(i, a.by_topk);
    const std::int64_t t = tj.quot, j = tj.rem;
    const std::uint64_t word = ll_tag_word(__float_as_uint(w), seq);
    for (int d = first_target; d < end_target; ++d)
      if (!peer_masked(v, d))
        ptx::st_relaxed_sys(&l.combine_weights_of(Peers::target(v, a.workspace, d), parity, me)[t * K + j],
                            word);
  };
#pragma unroll
  for (int u = 0; u < kWeightsAhead; ++u) {
    const std::int64_t i = threadIdx.x + static_cast<std::int64_t>(u) * blockDim.x;
    if (i < n) store(i, ahead.w[u]);
  }
  for (std::int64_t i = threadIdx.x + static_cast<std::int64_t>(kWeightsAhead) * blockDim.x; i < n;
       i += blockDim.x)
    store(i, a.topk_weights[i]);
  if constexpr (Peers::kStagesLocally) {
    __syncthreads();
    std::uint64_t* mine = l.combine_weights_of(a.workspace, parity, me);
    const std::size_t bytes = sizeof(std::uint64_t) * static_cast<std::size_t>(a.num_tokens * K);
    for (int d = static_cast<int>(threadIdx.x / 32); d < R; d += kLlWarps)
      if (ll_by_put<Peers>(v, d) && bytes > 0 && !peer_masked(v, d)) Peers::put_warp(v, mine, mine, bytes, d);
    Peers::finish_sends();
    __syncthreads();  // every completed put of the block comes before any signal
    ll_for_each_peer<Peers>(v, l, a.workspace, kLlKindCombine, [&](int p, LlControl* c) {
      if (ll_by_put<Peers>(v, p)) Peers::signal(v, &c->weights[parity][me], seq, p);
    });
  }
}

// The whole warp: this lane's slot's row here for item `item` (token_rows of the handle's
// dispatch), -1 for none. A masked owner gets no partials (its rows may predate the mask: its
// dispatch ran before). The row is loaded whatever the mask says, beside the mask's load: gated by
// it, the two round trips came one after the other, before the credit wait (NOTES 11.62).
__device__ __forceinline__ std::int32_t locate_partial(const LlCombineArgs& a, std::int64_t item) {
  const LlLayout& l = a.layout;
  const int R = a.view.num_domain_ranks, parts = partial_parts(l), lane = threadIdx.x % 32;
  if (item >= l.max_tokens * R * parts || lane >= l.max_topk) return -1;
  const PartialAt at = partial_at(a, item);
  const std::int32_t row =
      l.token_rows(a.workspace, a.dispatch_half, at.s)[static_cast<std::int64_t>(at.t) * l.max_topk + lane];
  return peer_masked(a.view, at.s) ? -1 : row;
}

// Slots whose rows a warp loads at once: an item's rows come in batches of this many slots (one
// batch for top-k <= 8), so that the rows of two items fit in registers together.
constexpr int kSlotBatch = 8;
static_assert(kLlMaxTopk <= 2 * kSlotBatch, "an item's rows are at most two batches");

// One warp's item (its index is the caller's) with the loads of its first batch of rows issued
// (they need no weights and touch no peer's staging).
struct PartialItem {
  unsigned slots = 0;              // the slots with a row here (0: nothing to send)
  std::int32_t row = -1;           // this lane's slot's row here
  uint2 vals[kSlotBatch][2] = {};  // this lane's pieces of the rows of slots [0, kSlotBatch)
};

// Whether half h of part `part` is inside the row (hidden % 128 == 0: wholly or not at all).
__device__ __forceinline__ bool half_valid(const LlLayout& l, int part, int h) {
  return lane_channel(part, h) < l.hidden;
}

// The whole warp: this lane's pieces of the rows of slots [first_slot, first_slot + kSlotBatch) of
// `it` (part `part`) into `vals` (a slot without a row here leaves its entry as it was).
__device__ __forceinline__ void load_slot_batch(const LlCombineArgs& a, const PartialItem& it, int part,
                                                int first_slot, uint2 (&vals)[kSlotBatch][2]) {
  const LlLayout& l = a.layout;
#pragma unroll
  for (int j = 0; j < kSlotBatch; ++j) {
    const std::int32_t r = __shfl_sync(kLlFullMask, it.row, first_slot + j);
    if (((it.slots >> (first_slot + j)) & 1u) == 0) continue;
    const std::uint16_t* y_row = a.y + static_cast<std::int64_t>(r) * l.hidden;
#pragma unroll
    for (int h = 0; h < 2; ++h)
      if (half_valid(l, part, h))
        vals[j][h] = ptx::ld_na_v2(reinterpret_cast<const uint2*>(y_row + lane_channel(part, h)));
  }
}

__device__ __forceinline__ PartialItem load_partial_item(const LlCombineArgs& a, std::int64_t item,
                                                         std::int32_t row) {
  const LlLayout& l = a.layout;
  PartialItem it;
  it.row = row;
  it.slots = __ballot_sync(kLlFullMask, row >= 0 && row < l.num_local_experts * l.capacity);
  if (it.slots == 0) return it;  // warp-uniform: no row of this token here
  load_slot_batch(a, it, ll_split(item, l.by_combine_parts).rem, 0, it.vals);
  return it;
}

// acc += w * row for the slots [first_slot, first_slot + kSlotBatch) present in `slots`, ascending;
// lane j holds slot j's weight.
__device__ __forceinline__ void add_slot_batch(float (&acc)[2][4], const uint2 (&vals)[kSlotBatch][2],
                                               unsigned slots, int first_slot, float weight) {
#pragma unroll
  for (int j = 0; j < kSlotBatch; ++j) {
    const float w = __shfl_sync(kLlFullMask, weight, first_slot + j);
    if (((slots >> (first_slot + j)) & 1u) != 0) add_weighted_piece(acc, vals[j], w);
  }
}

// This lane's slot's row of item `item` (row: locate_partial's), the item's part, asked into L2.
__device__ __forceinline__ void prefetch_partial_rows(const LlCombineArgs& a, std::int64_t item,
                                                      std::int32_t row) {
  const LlLayout& l = a.layout;
  if (row < 0 || row >= l.num_local_experts * l.capacity) return;
  prefetch_bf16_part(a.y + static_cast<std::int64_t>(row) * l.hidden, l.hidden,
                     ll_split(item, l.by_combine_parts).rem);
}

// The warp's first item (first_partial_item()) located and its rows' loads issued, and (CUDA IPC)
// the rows of its next item (partial_item_stride() later) located and asked into L2; before the credit
// wait with CUDA IPC (none of it needs a credit). The wait's acquire, and the weights' after it,
// each wait for every load in flight, so the next item's loads, issued after them, started only
// once the first item's had landed (~5 us into the kernel at `ll-dsv3`, NOTES 11.24): from L2
// they take one L2 round trip. Nothing for a warp with no item.
struct FirstPartial {
  PartialItem item;
  std::int32_t next_row = -1;  // locate_partial of the next item (with_next), else unknown
};
__device__ __forceinline__ FirstPartial first_partial(const LlCombineArgs& a, bool with_next) {
  const std::int64_t item = first_partial_item();
  const std::int64_t items = a.layout.max_tokens * a.view.num_domain_ranks * partial_parts(a.layout);
  const std::int64_t next = item + partial_item_stride();
  FirstPartial f;
  if (item >= items) return f;
  // Both token_rows loads before the first item's ballot: one round trip for the two.
  const std::int32_t row = locate_partial(a, item);
  if (with_next) f.next_row = locate_partial(a, next);
  f.item = load_partial_item(a, item, row);
  if (with_next) prefetch_partial_rows(a, next, f.next_row);
  return f;
}

// As a holder: the partial sums of every token with rows here, warp w of the grid taking items
// first_partial_item(), + warps, ...: the first as first_partial left it. While an item is summed,
// the next one is being located and (CUDA IPC) its rows are already on their way. A warp whose
// wait for weights failed stops (the failure is in the status word).
// NOTE: with a staging policy the next item's rows are loaded after this one is summed: two items'
// rows held across the NVSHMEM calls spill (the NVSHMEM instantiation: 16 / 80 B at 49f1066).
template <typename Peers>
__device__ void send_partials(const LlCombineArgs& a, int parity, std::uint64_t seq,
                              const FirstPartial& first) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  void* ws = a.workspace;
  const int R = v.num_domain_ranks, me = v.domain_rank, K = l.max_topk, lane = threadIdx.x % 32;
  const int parts = partial_parts(l);
  const std::int64_t items = l.max_tokens * R * parts;
  const std::int64_t num_warps = partial_item_stride();
  const LlControl* mine = l.control_of(ws, kLlKindCombine);
  // Sources reached by puts whose weights signal this warp has waited for (one acquire each: an
  // acquire at system scope invalidates the SM's L1). Sources reached by stores need none: their
  // weights carry their operation's tag.
  static_assert(kLlMaxRanks <= 128);
  std::uint64_t seen_low = 0, seen_high = 0;  // bit s: sources 0-63, 64-127
  constexpr bool kRowsAhead = !Peers::kStagesLocally;
  PartialItem cur = first.item;
  std::int64_t item = first_partial_item();
  std::int32_t ahead = kRowsAhead ? first.next_row : locate_partial(a, item + num_warps);
  for (; item < items; item += num_warps) {
    const bool more = item + num_warps < items;  // warp-uniform
    PartialItem next;
    std::int32_t after = -1;
    if (more) {
      if constexpr (kRowsAhead) next = load_partial_item(a, item + num_warps, ahead);
      after = locate_partial(a, item + 2 * num_warps);
    }
    if (cur.slots != 0) {  // warp-uniform
      const PartialAt at = partial_at(a, item);
      const std::int64_t t = at.t;
      const int s = at.s, part = at.part;
      const bool by_put = ll_by_put<Peers>(v, s);  // warp-uniform
      const std::uint64_t bit = std::uint64_t{1} << (s % 64);
      if (by_put && ((s < 64 ? seen_low : seen_high) & bit) == 0) {
        bool ok = true;
        if (lane == 0)
          ok = wait_at_least(&mine->weights[parity][s], seq, v, OpId::kLlCombine, CounterId::kWeightsReady,
                             v.domain_base_rank + s);
        if (!__shfl_sync(kLlFullMask, ok, 0)) return;
        if (s < 64)
          seen_low |= bit;
        else
          seen_high |= bit;
      }
      // This lane's slot's weight: with its tag, one load when it has landed (NOTES 11.62).
      std::uint64_t word = 0, polled_ns = 0;
      bool ok = true;
      if (((cur.slots >> lane) & 1u) != 0) {
        const std::uint64_t* at_weight = &l.combine_weights_of(ws, parity, s)[t * K + lane];
        if (by_put)
          word = *at_weight;  // after the signal's acquire
        else
          ok = wait_op_word(at_weight, seq, v, OpId::kLlCombine, CounterId::kWeightsReady,
                            v.domain_base_rank + s, word, polled_ns);
      }
      // Telemetry: the warp's lanes waited together, so one wait, the longest.
      if (v.telemetry != nullptr) {  // uniform over the launch
        const unsigned polled = __reduce_max_sync(
            kLlFullMask, static_cast<unsigned>(polled_ns < 0xffffffffu ? polled_ns : 0xffffffffu));
        if (polled != 0 && lane == 0) count_wait(v, OpId::kLlCombine, v.domain_base_rank + s, polled);
      }
      if (!__all_sync(kLlFullMask, ok)) return;
      const float weight = __uint_as_float(ll_word_bits(word));
      float acc[2][4];
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[h][i] = 0.0f;
      add_slot_batch(acc, cur.vals, cur.slots, 0, weight);
      if ((cur.slots >> kSlotBatch) != 0) {  // warp-uniform: top-k above kSlotBatch
        load_slot_batch(a, cur, part, kSlotBatch, cur.vals);
        add_slot_batch(acc, cur.vals, cur.slots, kSlotBatch, weight);
      }
      // Per-peer telemetry: one float32 partial row per (token, owner), counted with its part 0.
      if (part == 0 && lane == 0 && s != me)
        count_traffic(v, OpId::kLlCombine, s, sizeof(float) * static_cast<std::uint64_t>(l.hidden), 0);
      const bool staged = ll_by_put<Peers>(v, s);
      float* dst = staged ? l.combine_staged(ws, parity, s, t)
                          : l.combine_partial(Peers::target(v, a.workspace, s), parity, t, me);
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (half_valid(l, part, h))
          ptx::st_na_v4(reinterpret_cast<int4*>(dst + lane_channel(part, h)), float4_bits(acc[h]));
      if constexpr (Peers::kStagesLocally) {
        if (staged) {
          __syncwarp();
          const std::int64_t first_channel = static_cast<std::int64_t>(part) * kPartChannels;
          const std::int64_t channels =
              min(static_cast<std::int64_t>(kPartChannels), l.hidden - first_channel);
          Peers::put_warp(v, l.combine_partial(ws, parity, t, me) + first_channel, dst + first_channel,
                          sizeof(float) * static_cast<std::size_t>(channels), s);
        }
      }
    }
    if (!more) break;
    if constexpr (!kRowsAhead) next = load_partial_item(a, item + num_warps, ahead);
    cur = next;
    ahead = after;
  }
}

template <typename Peers>
__global__ void __launch_bounds__(kLlThreads, 1) ll_combine_kernel(LlCombineArgs a) {
  pdl_entry();
  FirstPartial first;
  WeightsAhead weights;
  ReduceAhead reduce_ahead;
  // NOTE: with a staging policy the NVSHMEM calls between prepare and the sends (signature,
  // weights) are real calls: a first item held across them spills its rows to local memory
  // (766-818 B at c2482e6), so there it is loaded after them. Block 0 takes no item unless it
  // is the whole grid (ll_partial_blocks), and then loads its first after its weights: its credit
  // wait waited for those rows' loads (every block's `credits` ~5 us at 963b21c, NOTES 11.16), and
  // every holder's first sum waits for the weights block 0 sends after that wait.
  const auto prepare = [&] {
    if (blockIdx.x == 0)
      weights = load_weights_ahead(a);
    else if constexpr (!Peers::kStagesLocally)
      first = first_partial(a, /*with_next=*/true);
  };
  const auto send = [&](int parity, std::uint64_t seq) {
    if (blockIdx.x == 0) send_weights<Peers>(a, parity, seq, weights);
    if (Peers::kStagesLocally || blockIdx.x == 0) first = first_partial(a, !Peers::kStagesLocally);
    send_partials<Peers>(a, parity, seq, first);
  };
  // With CUDA IPC each block flags its own partials and block b of an owner sums what block b of
  // every holder wrote (ReduceWalk); with puts, the grid's done signal and any block's items.
  constexpr bool kBySendSlot = !Peers::kStagesLocally;
  const auto locate = [&] { reduce_ahead = locate_reduce<kBySendSlot>(a); };
  const auto receive = [&](int parity) { reduce_partials<kBySendSlot>(a, parity, reduce_ahead); };
  if constexpr (kBySendSlot)
    ll_run_phases<Peers>(a.view, a.layout, a.workspace, kLlKindCombine, OpId::kLlCombine, a.phases, a.half,
                         a.trace, a.signature, prepare, send, locate, receive,
                         [&](char* ws, int parity, int holder, int block) {
                           return a.layout.partials_done(ws, parity, holder, block);
                         });
  else
    ll_run_phases<Peers>(a.view, a.layout, a.workspace, kLlKindCombine, OpId::kLlCombine, a.phases, a.half,
                         a.trace, a.signature, prepare, send, locate, receive);
}

// The launcher of the instantiation for `Peers`.
template <typename Peers>
void launch_ll_combine_with(const LlCombineArgs& args, int num_blocks, void* stream) {
  launch_kernel(Launch::kPdl, ll_combine_kernel<Peers>, num_blocks, kLlThreads, 0,
                static_cast<cudaStream_t>(stream), args);
}

}  // namespace

}  // namespace epcomm
