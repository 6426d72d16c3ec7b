// Low-latency combine pulled by the tokens' owners (ll_args.hpp, steps 7p and 8p): with CUDA IPC
// and a zero-copy y (every rank's y is then in its workspace, which every peer has mapped), each
// owner reads the BF16 rows of its own tokens straight from the holders' y and sums them; no float32
// partial is written, fenced, signalled and read again, and the combine is one phase of data. The
// IPC instantiation only (ll_combine.cu picks this kernel when LlCombineArgs::pull is set).
// Definitions in an unnamed namespace, one private copy per including translation unit.
//
// Send phase: block 0 waits for the credits of the operation two calls ago (as every block of the
// pushed form does), publishes this call's signature in every other peer, then release-stores seq
// into done[p][this rank] there (this rank's y, written before the launch, and the token_rows
// of the handle's dispatch are final). With CUDA IPC the pushed combine flags per block
// (partials_done) and never adds to done, so done holds the latest pulled operation's seq; the
// credits (freed) count as in the pushed form (a credit per block per operation), so pushed and
// pulled combines may follow each other. Every rank must pass the same zero_copy: a rank that
// pushes while its peers pull waits for flags they never set, and the wait times out naming them.
// Receive phase, every block: wait for the done flag and the signature of every other unmasked
// rank (a rank's own rows need no wait: its y and token_rows come before the launch on its stream);
// then warps take items (token t, 256-channel part), read each slot's row in its holder (the
// holder's token_rows for this rank, then the holder's y), and sum in the pushed combine's order:
// per holder in rank order its slots in slot order, w * y rounded to float32 and added from 0,
// then the holders' sums added from 0, one BF16 rounding (bit for bit the pushed combine's result).
// Then each block gives its credit (freed) to every peer, and block 0 waits until every other
// unmasked rank's blocks have given theirs for this operation: once the launch has completed, no
// peer reads this rank's y or token_rows any more, so the caller may write the y half again. So a
// split call's receive completes only once every rank has received it too: ranks must call their
// receives at the same place in their sequences of low-latency calls (the same program does);
// otherwise the wait times out, naming the rank.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "core/call_signature.cuh"
#include "core/pdl.cuh"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_combine_parts.cuh"
#include "low_latency/ll_sync.cuh"
#include "transport/ipc_ll_peers.cuh"

namespace epcomm {

namespace {

// Slots of one token whose rows a warp loads at once, before it sums any (top-k up to 8; a token
// with more takes its rows one slot at a time, in the order they are summed).
constexpr int kPullSlotBatch = 8;

// This lane's slot of token t (lanes below num_topk): its expert's holder (R: none, an id out of
// range, or a masked holder), its weight, and its row in the holder's y (-1: none).
struct PullSlot {
  int holder;
  float weight = 0.0f;
  std::int32_t row = -1;
};

// The whole warp: this lane's slot of token t, from this call's own inputs (no peer is read).
__device__ __forceinline__ PullSlot pull_slot(const LlCombineArgs& a, std::int64_t t, const WarpMask& mask) {
  const int lane = threadIdx.x % 32, R = a.view.num_domain_ranks;
  std::int64_t e = -1;
  PullSlot s{R};
  if (lane < a.num_topk) {
    e = ll_load_expert(a.topk_idx, a.idx_bytes, t * a.num_topk + lane);
    s.weight = a.topk_weights[t * a.num_topk + lane];
  }
  if (e >= 0 && e < a.layout.num_experts) s.holder = a.layout.by_local_experts.divide(static_cast<int>(e));
  if (mask.masked(s.holder < R ? s.holder : -1)) s.holder = R;
  return s;
}

// The holder's row of this lane's slot of token t: token_rows[this rank][t][slot] of the handle's
// dispatch, in the holder's workspace (-1 when out of range: the holder dropped it).
__device__ __forceinline__ std::int32_t pull_row(const LlCombineArgs& a, const PullSlot& s, std::int64_t t) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  if (s.holder >= v.num_domain_ranks) return -1;
  char* holder = IpcPeers::target(v, a.workspace, s.holder);
  const std::int32_t row =
      l.token_rows(holder, a.dispatch_half, v.domain_rank)[t * l.max_topk + threadIdx.x % 32];
  return row >= 0 && row < l.num_local_experts * l.capacity ? row : -1;
}

// This lane's slot's row (located: pull_row), part `part` of it, asked into L2 from its holder's y.
__device__ __forceinline__ void prefetch_pull_row(const LlCombineArgs& a, const PullSlot& s, int part) {
  if (s.row < 0) return;
  const LlLayout& l = a.layout;
  prefetch_bf16_part(l.zero_copy_y(IpcPeers::target(a.view, a.workspace, s.holder), a.half) +
                         static_cast<std::int64_t>(s.row) * l.hidden,
                     l.hidden, part);
}

// The whole warp: this lane's pieces (half h: 4 channels of 128) of part `part` of slot j's row
// (its holder and row in lane j).
__device__ __forceinline__ void load_pull_slot(const LlCombineArgs& a, const PullSlot& s, int part, int j,
                                               uint2 (&val)[2]) {
  const LlLayout& l = a.layout;
  const int holder = __shfl_sync(kLlFullMask, s.holder, j);
  const std::int32_t row = __shfl_sync(kLlFullMask, s.row, j);
  const std::uint16_t* y = l.zero_copy_y(IpcPeers::target(a.view, a.workspace, holder), a.half) +
                           static_cast<std::int64_t>(row) * l.hidden;
#pragma unroll
  for (int h = 0; h < 2; ++h)
    if (lane_channel(part, h) < l.hidden)
      val[h] = ptx::ld_na_v2(reinterpret_cast<const uint2*>(y + lane_channel(part, h)));
}

// The whole warp: item (t, part) of this rank's tokens (`s`: this lane's slot, its row located),
// read from the holders and summed into out. Holders in rank order: each one's slots from 0 in slot
// order, then that sum added (a holder whose rows were all dropped adds 0, as the pushed owner adds
// what its partial would be). `ahead()` runs once the rows' loads are issued, before the sum: the
// warp's item after next is located then (its ids and rows: two round trips behind these rows' one)
// and its rows asked into L2.
template <typename Ahead>
__device__ __forceinline__ void pull_item(const LlCombineArgs& a, std::int64_t t, int part, const PullSlot& s,
                                          Ahead ahead) {
  const LlLayout& l = a.layout;
  const int R = a.view.num_domain_ranks, me = a.view.domain_rank;
  const unsigned slots = __ballot_sync(kLlFullMask, s.row >= 0);
  const bool batched = (slots >> kPullSlotBatch) == 0;  // warp-uniform
  uint2 vals[kPullSlotBatch][2] = {};
  if (batched) {
#pragma unroll
    for (int j = 0; j < kPullSlotBatch; ++j)
      if (((slots >> j) & 1u) != 0) load_pull_slot(a, s, part, j, vals[j]);
  }
  ahead();
  float acc[2][4] = {};
  for (int last = -1;;) {
    const unsigned above = s.holder < R && s.holder > last ? static_cast<unsigned>(s.holder) : R;
    const int holder = static_cast<int>(__reduce_min_sync(kLlFullMask, above));
    if (holder >= R) break;
    last = holder;
    const unsigned of_holder = __ballot_sync(kLlFullMask, s.holder == holder) & slots;
    float sum[2][4] = {};
    if (batched) {
#pragma unroll
      for (int j = 0; j < kPullSlotBatch; ++j)  // of_holder is warp-uniform: the shuffle is whole
        if (((of_holder >> j) & 1u) != 0)
          add_weighted_piece(sum, vals[j], __shfl_sync(kLlFullMask, s.weight, j));
    } else {
      for (unsigned left = of_holder; left != 0; left &= left - 1) {
        const int j = __ffs(left) - 1;
        uint2 val[2] = {};
        load_pull_slot(a, s, part, j, val);
        add_weighted_piece(sum, val, __shfl_sync(kLlFullMask, s.weight, j));
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[h][i] = __fadd_rn(acc[h][i], sum[h][i]);
    // Per-peer telemetry: the BF16 rows read from another holder, counted with part 0.
    if (part == 0 && threadIdx.x % 32 == 0 && holder != me)
      count_traffic(a.view, OpId::kLlCombine, holder, 0,
                    sizeof(std::uint16_t) * static_cast<std::uint64_t>(l.hidden) * __popc(of_holder));
  }
  store_bf16_part(a.out + t * l.hidden, l.hidden, part, acc);
}

// Every thread of the block: every other unmasked rank has begun this operation (its done flag here
// is this operation's seq) and its signature equals this call's. A thread per such rank. False
// (for all) when a wait failed or a signature differed.
__device__ __forceinline__ bool wait_holders(const LlCombineArgs& a, int parity, std::uint64_t seq) {
  const DomainView& v = a.view;
  const LlControl* mine = a.layout.control_of(a.workspace, kLlKindCombine);
  const int s = static_cast<int>(threadIdx.x);
  bool ok = true;
  if (s < v.num_domain_ranks && s != v.domain_rank && !peer_masked(v, s)) {
    const int peer = v.domain_base_rank + s;
    ok = wait_at_least<Polls::kAcquire>(&mine->done[parity][s], seq, v, OpId::kLlCombine,
                                        CounterId::kRowsStaged, peer);
    if (ok) ok = signature_matches(&mine->signature[parity][s], a.signature, v, OpId::kLlCombine, peer);
  }
  return __syncthreads_and(ok);
}

// Block 0, a thread per other unmasked rank: that rank's blocks have all given their credit for
// this operation (they read this rank's y and token_rows no more).
__device__ __forceinline__ void wait_readers(const LlCombineArgs& a, int parity, std::uint64_t seq) {
  const DomainView& v = a.view;
  const LlControl* mine = a.layout.control_of(a.workspace, kLlKindCombine);
  const int o = static_cast<int>(threadIdx.x);
  if (o < v.num_domain_ranks && o != v.domain_rank && !peer_masked(v, o))
    wait_at_least<Polls::kAcquire>(&mine->freed[parity][o], ll_done_after(seq, gridDim.x), v,
                                   OpId::kLlCombine, CounterId::kSlotFree, v.domain_base_rank + o);
}

__global__ void __launch_bounds__(kLlThreads, 1) ll_combine_pull_kernel(LlCombineArgs a) {
  pdl_entry();
  const std::uint64_t entered = a.trace != nullptr ? ptx::globaltimer() : 0;
  const DomainView& v = a.view;
  const LlLayout& l = a.layout;
  char* ws = a.workspace;
  LlControl* mine = l.control_of(ws, kLlKindCombine);
  const LlLaunchSeq launch = ll_launch_seq(mine, a.phases, a.half);
  const MaskCopy mask_copy = load_mask_copy(v);
  // The warp's item, and its slots from this call's own inputs (before any wait); none in a
  // send-only launch.
  const int parts = partial_parts(l);
  const std::int64_t item = first_partial_item();
  const bool has_item = (a.phases & kLlRecv) && item < a.num_tokens * parts;  // warp-uniform
  const LlSplit tp = ll_split(has_item ? item : 0, l.by_combine_parts);
  const WarpMask mask = (a.phases & kLlRecv) ? WarpMask::load(v) : WarpMask{};
  const PullSlot first = has_item ? pull_slot(a, tp.quot, mask) : PullSlot{v.num_domain_ranks};
  // The warp's second item (partial_item_stride() later), its slots loaded beside the first's: after the
  // wait both are located in one round trip, and the second's rows go into L2 while the first's
  // are summed (at ll-dsv3 on one H100 the warps with two items ended ~3 us after those with one,
  // NOTES 11.72).
  const std::int64_t stride = partial_item_stride();
  const bool has_second = has_item && item + stride < a.num_tokens * parts;  // warp-uniform
  const LlSplit sp = ll_split(has_second ? item + stride : 0, l.by_combine_parts);
  const PullSlot second = has_second ? pull_slot(a, sp.quot, mask) : PullSlot{v.num_domain_ranks};
  const bool publishes = (a.phases & kLlSend) && blockIdx.x == 0;
  const LlCreditLook look = publishes ? ll_look_credits(mine, v.num_domain_ranks) : LlCreditLook{};
  const std::uint64_t seq = launch.value();  // once the items' loads are issued
  const int parity = static_cast<int>(seq & 1u);
  const LlTracer tracer(a.trace, seq);
  // Stored after the items' loads are issued; read after the credit wait's barrier, or the credits'.
  const std::uint8_t* masked = store_mask_copy(v, mask_copy);
  if (a.phases & kLlSend) {
    tracer.clear();
    tracer.mark(kLlTraceEntry, entered);
    // Only block 0 writes into peers (the signature and the flag), and only there does an
    // earlier operation's reader matter: a peer still to receive the operation two calls ago
    // (split) reads the signature slot this one overwrites.
    if (publishes && !ll_wait_credits(mine, parity, seq, v, OpId::kLlCombine, look)) return;
    tracer.mark(kLlTraceCredits);
    if (publishes) {
      // NOTE: thread p stores the signature into p and then releases the flag there: its own
      // store, and this rank's y and token_rows (written before the launch), come before it. Not
      // to this rank itself: nothing of its own is waited for (wait_holders).
      ll_for_each_peer<IpcPeers>(
          v, l, ws, kLlKindCombine,
          [&](int p, LlControl* c) {
            if (p == v.domain_rank) return;
            store_signature(&c->signature[parity][v.domain_rank], a.signature);
            IpcPeers::signal(v, &c->done[parity][v.domain_rank], seq, p);
          },
          masked);
    }
    tracer.mark(kLlTraceSent);
    ll_arrive_after_send<IpcPeers>(mine, seq, a.half, tracer);
  } else {
    tracer.mark(kLlTraceRecvEntry, entered);
  }
  if (a.phases & kLlRecv) {
    // NOTE: as in ll_run_phases, the credits are given even when a wait failed or a signature
    // differed (nothing was read from the peers then); block 0 then waits for no reader.
    const bool arrived = wait_holders(a, parity, seq);
    if (arrived) {
      tracer.mark(kLlTraceDoneSeen);
      const std::int64_t items = a.num_tokens * parts;
      PullSlot cur = first, next = second;
      if (has_item) cur.row = pull_row(a, cur, tp.quot);
      if (has_second) next.row = pull_row(a, next, sp.quot);
      prefetch_pull_row(a, next, sp.rem);
      LlSplit at = tp, next_at = sp;
      for (std::int64_t i = item; i < items; i += stride) {
        PullSlot after{v.num_domain_ranks};
        LlSplit after_at{0, 0};
        pull_item(a, at.quot, at.rem, cur, [&] {
          if (i + 2 * stride >= items) return;  // warp-uniform
          after_at = ll_split(i + 2 * stride, l.by_combine_parts);
          after = pull_slot(a, after_at.quot, mask);
          after.row = pull_row(a, after, after_at.quot);
          prefetch_pull_row(a, after, after_at.rem);
        });
        cur = next;
        at = next_at;
        next = after;
        next_at = after_at;
      }
    }
    tracer.mark(kLlTraceReceived);
    ll_give_credits<IpcPeers>(v, l, ws, kLlKindCombine, parity, masked);
    if (blockIdx.x == 0 && arrived) wait_readers(a, parity, seq);
    tracer.mark(kLlTraceExit);
  }
}

}  // namespace

}  // namespace epcomm
