// Device helpers shared by the low-latency kernels: an operation's sequence number, the credit
// wait before writing into peers' staging, the per-block completion signals of the send phase (and
// the last block's bookkeeping), the wait for peers' completion signals and the per-block credits
// (ll_args.hpp, steps 1, 3, 4 and 6). Peers are reached through the policy of ll_peers.cuh; waits always poll
// this rank's own memory. Device code only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/call_signature.cuh"
#include "core/phase_tracer.cuh"
#include "core/wait.cuh"
#include "low_latency/ll_args.hpp"

namespace epcomm {

// Every low-latency kernel runs blocks of 512 threads, at most one per SM (ll_args.hpp,
// "Co-residency").
inline constexpr int kLlThreads = 512;
inline constexpr int kLlWarps = kLlThreads / 32;
inline constexpr unsigned kLlFullMask = 0xffffffffu;

// Work-item indices of the low-latency kernels fit in 32 bits: at most kLlMaxTokensPerRank tokens x
// kLlMaxRanks sources x 64 parts of 128 channels (2^29), and a grid's warps past the end. Their
// divisions are done in 32 bits (~20 instructions): with 64-bit operands each is a call of ~100
// instructions, on the critical path of every row (the item's token decides its first load).
static_assert(kLlMaxTokensPerRank * kLlMaxRanks * (kLlMaxHidden / 128) < (std::int64_t{1} << 30));
struct LlSplit {
  int quot, rem;
};
// item / divisor and item % divisor, for 0 <= item < 2^31 and divisor >= 1.
__device__ __forceinline__ LlSplit ll_split(std::int64_t item, int divisor) {
  const int i = static_cast<int>(item);
  const int q = i / divisor;
  return {q, i - q * divisor};
}
// The same by a divisor fixed for the launch (set on the host): a multiply-high and a correction.
__device__ __forceinline__ LlSplit ll_split(std::int64_t item, const FastDivisor& divisor) {
  const int i = static_cast<int>(item);
  const int q = divisor.divide(i);
  return {q, i - q * divisor.divisor()};
}

// The domain's mask (DomainView::masked) spread over a warp's lanes: lane l holds in bit j whether
// domain rank 32 * j + l is masked. Loaded once per warp (its loads go out beside the warp's first
// others), then asked by shuffles: a rank's check costs no load on the path it gates (NOTES 11.62).
struct WarpMask {
  unsigned bits = 0;
  // The whole warp.
  __device__ __forceinline__ static WarpMask load(const DomainView& v) {
    WarpMask m;
    if (v.masked == nullptr) return m;
    const int lane = static_cast<int>(threadIdx.x % 32);
#pragma unroll
    for (int j = 0; j < kLlMaxRanks / 32; ++j) {
      const int r = 32 * j + lane;
      if (r < v.num_domain_ranks && peer_masked(v, r)) m.bits |= 1u << j;
    }
    return m;
  }
  // The whole warp (a shuffle): whether domain rank r is masked; false for r < 0.
  __device__ __forceinline__ bool masked(int r) const {
    const unsigned asked = r >= 0 ? static_cast<unsigned>(r) : 0u;
    const unsigned word = __shfl_sync(0xffffffffu, bits, static_cast<int>(asked % 32));
    return r >= 0 && ((word >> (asked / 32)) & 1u) != 0;
  }
};
static_assert(kLlMaxRanks % 32 == 0 && kLlMaxRanks <= 32 * 32, "a lane's word covers its ranks");

// The sequence number of this launch's operation (ll_args.hpp, "Sequence numbers and parity"): a
// send phase begins operation control.seq + 1; a receive-only launch completes the operation whose
// send stored its seq in issued[half]. Read once by every thread at the start of the launch, by a
// plain load: the warps of a block then share one L1 fill, where a volatile (system-scope) load
// sent every warp of the grid to the same L2 line at once (2,112 requests at 132 x 16 warps).
// Nothing is stale: no block changes seq or issued[] before every block has read them (the last
// block to arrive stores them), and the launch's first loads follow the wait for the kernels ahead
// of it (pdl_entry), whose writes it then sees.
// Loaded at entry, read (value()) only once the launch's first loads are issued: the seq's use in
// the load's own basic block held every later load of the warp back by its round trip (NOTES 11.89).
struct LlLaunchSeq {
  std::uint64_t word = 0;  // control.seq for a send phase, else issued[half]
  bool sends = false;
  __device__ __forceinline__ std::uint64_t value() const { return sends ? word + 1 : word; }
};
__device__ __forceinline__ LlLaunchSeq ll_launch_seq(const LlControl* control, int phases, int half) {
  LlLaunchSeq s;
  s.sends = (phases & kLlSend) != 0;
  s.word = *(s.sends ? &control->seq : &control->issued[half]);
  return s;
}

// Waits for the word a peer leaves at `at` tagged with operation `seq` (ll_tag_word: a combine
// weight, a tagged list's count or place): true once its tag is seq's, the word in `word`; false on
// a timeout or after another wait's (reported, naming `peer`, `op` and `counter`, the tags as
// expected and seen). `polled_ns` as wait_tagged's.
__device__ __forceinline__ bool wait_op_word(const std::uint64_t* at, std::uint64_t seq, const DomainView& v,
                                             OpId op, CounterId counter, int peer, std::uint64_t& word,
                                             std::uint64_t& polled_ns) {
  return wait_tagged(
      at, [&](std::uint64_t w) { return ll_word_is_of(w, seq); },
      [](std::uint64_t w) { return static_cast<std::int64_t>(w >> 32); },
      static_cast<std::int64_t>(ll_op_tag(seq)), v, op, counter, peer, word, polled_ns);
}

// Step 1's first look, at the launch's start beside the seq load (one round trip for both, not
// the seq's then the credits'): the block's last 2R threads acquire freed[i % 2][i / 2], i counted
// from the last thread, both parities, as the seq that picks one is not yet known. The last warps,
// because an acquire holds back its thread's later loads by its round trip, and the first warps'
// loads come first (combine: block 0's weights, warp 0).
struct LlCreditLook {
  std::uint64_t value = 0;  // what this thread acquired
  int rank = -1;            // the receiver whose credits it looked at (-1: none)
  int parity = 0;
};
static_assert(2 * kLlMaxRanks <= kLlThreads, "a thread per (receiver, parity)");
__device__ __forceinline__ LlCreditLook ll_look_credits(const LlControl* mine, int num_domain_ranks) {
  const int i = kLlThreads - 1 - static_cast<int>(threadIdx.x);
  LlCreditLook look;
  if (i >= 2 * num_domain_ranks) return look;
  look.rank = i / 2;
  look.parity = i % 2;
  look.value = ptx::ld_acquire_sys(&mine->freed[look.parity][look.rank]);
  return look;
}

// Step 1: every peer has finished reading what this rank wrote into its staging of `parity` two
// operations ago: every receive-phase block of every earlier operation of this parity has added
// its credit, (seq - 1) / 2 operations of gridDim.x blocks each (every rank launches the same
// grid). `look`: this thread's ll_look_credits; a thread polls only if its look was of this parity
// and saw too few.
// Called by every thread of the block; false (for all) when a wait failed.
__device__ __forceinline__ bool ll_wait_credits(const LlControl* mine, int parity, std::uint64_t seq,
                                                const DomainView& v, OpId op, const LlCreditLook& look) {
  bool ok = true;
  const std::uint64_t credits = ll_credits_before(seq, gridDim.x);
  if (look.rank >= 0 && look.parity == parity && look.value < credits)
    ok = wait_at_least<Polls::kAcquire>(&mine->freed[parity][look.rank], credits, v, op, CounterId::kSlotFree,
                                        v.domain_base_rank + look.rank);
  return __syncthreads_and(ok);
}

// Step 4: every block of every source has completed its writes of operation `seq` into this rank
// (every rank launches the same grid), and every source's signature equals this call's `sig`: the
// thread that acquires a source's done signal reads the signature it wrote before it. Called by
// every thread of the block; false (for all) when a wait failed or a signature differed (reported
// as kPeerMismatch). NOTE: with one peer gone and another mismatched at once, whichever is seen
// first is reported (the first report wins), so such a double fault may read as a mismatch.
__device__ __forceinline__ bool ll_wait_done(const LlControl* mine, int parity, std::uint64_t seq,
                                             const CallSignature& sig, const DomainView& v, OpId op) {
  bool ok = true;
  const std::uint64_t signals = ll_done_after(seq, gridDim.x);
  for (int s = threadIdx.x; s < v.num_domain_ranks && ok; s += blockDim.x) {
    ok = wait_at_least<Polls::kAcquire>(&mine->done[parity][s], signals, v, op, CounterId::kRowsArrived,
                                        v.domain_base_rank + s);
    if (ok && !peer_masked(v, s))
      ok = signature_matches(&mine->signature[parity][s], sig, v, op, v.domain_base_rank + s);
  }
  return __syncthreads_and(ok);
}

// The per-block form of step 4 (the CUDA IPC combine's partials, ll_combine.cuh): every source's
// block 0 and its block `blockIdx.x` have finished writing their part of operation `seq` here
// (flag_of(s, b): source s's flag of its block b in this rank's workspace), and every source's
// signature, published by its block 0 before that block's flag, equals `sig`. Two threads per
// source, waiting at once: thread s for block 0's flag, then the signature; thread R + s for this
// block's. Called by every thread of the block; false (for all) when a wait failed or a signature
// differed.
template <typename FlagOf>
__device__ __forceinline__ bool ll_wait_block_flags(const LlControl* mine, int parity, std::uint64_t seq,
                                                    const CallSignature& sig, const DomainView& v, OpId op,
                                                    FlagOf flag_of) {
  static_assert(2 * kLlMaxRanks <= kLlThreads, "two threads per source");
  const int R = v.num_domain_ranks, i = static_cast<int>(threadIdx.x);
  const int s = i < R ? i : i - R, block = i < R ? 0 : static_cast<int>(blockIdx.x);
  bool ok = true;
  if (i < 2 * R && !peer_masked(v, s)) {
    ok = wait_at_least<Polls::kAcquire>(flag_of(s, block), seq, v, op, CounterId::kRowsArrived,
                                        v.domain_base_rank + s);
    if (ok && i < R) ok = signature_matches(&mine->signature[parity][s], sig, v, op, v.domain_base_rank + s);
  }
  return __syncthreads_and(ok);
}

// Rank d is reached by puts (its bytes are staged in this rank's own workspace first): always
// false for a policy that does not stage (transport/ipc_ll_peers.cuh).
template <typename Peers>
__device__ __forceinline__ bool ll_by_put(const DomainView& v, int d) {
  if constexpr (Peers::kStagesLocally)
    return d < Peers::first_direct(v) || d >= Peers::end_direct(v);
  else
    return false;
}

// Step 2's signature, by block 0 before its done signal: this call's signature at
// signature[parity][this rank] in every peer's control block: stored there for the ranks reached
// by stores; for the others staged in this rank's own control block and put from there (one
// thread, which also completes the puts before the block signals).
template <typename Peers>
__device__ __forceinline__ void ll_publish_signature(const DomainView& v, const LlLayout& l, char* own,
                                                     int kind, int parity, const CallSignature& sig) {
  if (blockIdx.x != 0) return;
  const int me = v.domain_rank;
  for (int p = Peers::first_direct(v) + static_cast<int>(threadIdx.x); p < Peers::end_direct(v);
       p += blockDim.x)
    if (!peer_masked(v, p) && !(Peers::kStagesLocally && p == me))
      store_signature(&l.control_of(Peers::target(v, own, p), kind)->signature[parity][me], sig);
  if constexpr (Peers::kStagesLocally) {
    if (threadIdx.x != 0) return;
    // NOTE: the thread that puts the staged copy writes it, so the puts read what it stored.
    CallSignature* staged = &l.control_of(own, kind)->signature[parity][me];
    store_signature(staged, sig);
    for (int p = 0; p < v.num_domain_ranks; ++p)
      if (ll_by_put<Peers>(v, p) && !peer_masked(v, p))
        Peers::put(v, staged, staged, sizeof(CallSignature), p);
  }
}

// The block's copy of the domain's mask in shared memory (no peer changes the mask during a call),
// made in two steps: load_mask_copy at entry (threads [0, R) load their rank's byte into a
// register; a thread per rank, not a loop: with the loop the combine's entry spilled, 48 B), then
// store_mask_copy once the entry's other loads are issued and before the barrier after which the
// copy is read. Stored at entry, the byte's round trip stalled warp 0 before it issued its first
// item's or ids' loads, so their round trip followed it (bench/NOTES.md 11.89). Loaded from global
// memory after a wait's acquire, the mask held each place and count store back by a round trip
// (the list blocks' path, NOTES 11.62), each count of the receive's scan (NOTES 11.83), and each
// flag and credit; the copy avoids that.
struct MaskCopy {
  std::uint8_t masked = 0;  // this thread's rank's byte as loaded, nonzero: masked (threads [0, R))
};
__device__ __forceinline__ MaskCopy load_mask_copy(const DomainView& v) {
  MaskCopy m;
  // NOTE: the byte is kept as loaded (rank_masked's test, nonzero, is the readers'): a test here
  // would wait for the load at once.
  if (const int p = static_cast<int>(threadIdx.x); p < v.num_domain_ranks && v.masked != nullptr)
    m.masked = v.masked[v.domain_base_rank + p];
  return m;
}
// Every thread; returns the copy, to be read after the block's next barrier.
__device__ __forceinline__ const std::uint8_t* store_mask_copy(const DomainView& v, const MaskCopy& m) {
  __shared__ std::uint8_t masked[kLlMaxRanks];
  static_assert(kLlMaxRanks <= kLlThreads, "a thread per rank");
  if (const int p = static_cast<int>(threadIdx.x); p < v.num_domain_ranks) masked[p] = m.masked;
  return masked;
}

// A thread per domain peer p, masked peers skipped (as by every signal here): signal(p, c) with c
// the LlControl of kind `kind` in p's workspace as this rank reaches it (Peers::target). `masked`,
// when given, is the block's copy of the domain's mask (store_mask_copy), read instead of the view's.
template <typename Peers, typename Signal>
__device__ __forceinline__ void ll_for_each_peer(const DomainView& v, const LlLayout& l, char* own, int kind,
                                                 Signal signal, const std::uint8_t* masked = nullptr) {
  for (int p = threadIdx.x; p < v.num_domain_ranks; p += blockDim.x)
    if (masked != nullptr ? masked[p] == 0 : !peer_masked(v, p))
      signal(p, l.control_of(Peers::target(v, own, p), kind));
}

// Step 3, by every block once its sends are done (and, when staging locally, completed): its
// completion, done[parity][this rank], in every peer (a block barrier first: every write of the
// block comes before the adds; each add is a release at system scope, cumulative over them).
// `masked`: the block's copy of the mask (store_mask_copy).
template <typename Peers>
__device__ __forceinline__ void ll_signal_done(const DomainView& v, const LlLayout& l, char* own, int kind,
                                               int parity, const std::uint8_t* masked) {
  __syncthreads();
  ll_for_each_peer<Peers>(
      v, l, own, kind,
      [&](int p, LlControl* c) { Peers::signal_add(v, &c->done[parity][v.domain_rank], 1, p); }, masked);
}

// A thread per domain peer p, masked peers skipped: seq release-stored into flag_of(p's workspace
// as this rank reaches it, Peers::target): a block's own completion flag in every peer (the direct dispatch's
// per-block flags). Call it after a block barrier: the release covers the block's writes. The flag to this
// rank itself is released at GPU scope when peers are reached by stores: its reader reads only what this GPU
// wrote. `masked`: the block's copy of the mask (store_mask_copy).
template <typename Peers, typename FlagOf>
__device__ __forceinline__ void ll_flag_block(const DomainView& v, char* own, FlagOf flag_of,
                                              std::uint64_t seq, const std::uint8_t* masked) {
  for (int p = threadIdx.x; p < v.num_domain_ranks; p += blockDim.x) {
    if (masked[p] != 0) continue;
    if (!Peers::kStagesLocally && p == v.domain_rank)
      ptx::st_release_gpu(flag_of(Peers::target(v, own, p)), seq);
    else
      Peers::signal(v, flag_of(Peers::target(v, own, p)), seq, p);
  }
}

// Step 6, by every block once its receive work is done (every read of the staging): its credit,
// freed[parity][this rank], in every peer.
// NOTE: an unordered add. A credit carries no data; it says only that this block's reads of the
// staging are over. Each of those reads has returned its value before the block barrier, because
// every value read is used before it (stored to the outputs, summed, or used as an index), so
// no write that the credit lets a sender make can reach an earlier read. A release here would
// wait for the block's outstanding output writes (1.2-1.5 us of every kernel's tail, NOTES 11.2),
// which nobody this credit reaches reads. `masked`: the block's copy of the mask (store_mask_copy).
template <typename Peers>
__device__ __forceinline__ void ll_give_credits(const DomainView& v, const LlLayout& l, char* own, int kind,
                                                int parity, const std::uint8_t* masked) {
  __syncthreads();
  ll_for_each_peer<Peers>(
      v, l, own, kind,
      [&](int p, LlControl* c) { Peers::credit_add(v, &c->freed[parity][v.domain_rank], 1, p); }, masked);
}

// The low-latency kernels' phase stamps (LlTracePoint, ll_args.hpp), one entry per block.
using LlTracer = PhaseTracer<kLlTraceRing, kLlTracePoints>;

// Every thread of every block, once the block's sends are done and signalled (after the block
// barrier in front of the signals): the block's arrival, by its last thread; the last block to
// arrive resets the counter and stores the operation's seq, and into issued[half] for a receive
// launched later. Then thread 0 marks `send-arrived` (past its own signals' fence).
// NOTE: no fence and no barrier: the peers learn of the sends from each block's own signals, and
// what the arrival stores is read only by later launches, after this one ends. So no thread waits
// for the arrival's round trip, which overlaps thread 0's release add (with a barrier after it,
// every block's receive began one round trip after its fence: NOTES 11.31).
template <typename Peers>
__device__ __forceinline__ void ll_arrive_after_send(LlControl* mine, std::uint64_t seq, int half,
                                                     const LlTracer& tracer) {
  if (threadIdx.x == kLlThreads - 1 && atomicAdd(&mine->send_arrivals, 1u) == gridDim.x - 1) {
    mine->send_arrivals = 0;
    mine->seq = seq;
    mine->issued[half] = seq;
  }
  tracer.mark(kLlTraceSendArrived);
  // NOTE: with a staging policy (NVSHMEM) a barrier here still: without it the receive's first
  // loads move up among the signals' calls and the combine spills (8 / 28 B).
  if constexpr (Peers::kStagesLocally) __syncthreads();
}

// The phase protocol every low-latency kernel follows around its own work (ll_args.hpp, steps 1 to
// 6): the send phase runs `prepare()` (loads that touch no peer's staging), waits for credits,
// runs `send(parity, seq)`, every block adds its `done` signal in every peer, and the last block to
// arrive stores the operation's seq; the receive phase waits for every peer's `done`, runs
// `receive(parity)`, and every block gives its credit (`freed`) to every peer.
// With `flag_of` (flag_of(ws, parity, source, block): a block's flag in workspace ws), each block
// instead release-stores seq into its own flag in every peer, and block b's receive waits only for
// block 0 and block b of every source (ll_wait_block_flags): for a receive whose block b reads only
// what block b of each source wrote (the CUDA IPC combine).
// `locate()` runs in the receive phase before that wait: loads of this call's own inputs that the
// receive needs first (their round trip hides behind the wait instead of following it).
// `own` is this rank's workspace. With a policy that stages locally, every thread completes its puts before
// its block signals, so every put has completed before the signal. Every thread of every block calls it.
// `sig` is this call's signature (published with the sends, checked before the receive).
template <typename Peers, typename Prepare, typename Send, typename Locate, typename Receive,
          typename FlagOf = std::nullptr_t>
__device__ __forceinline__ void ll_run_phases(const DomainView& v, const LlLayout& l, char* own, int kind,
                                              OpId op, int phases, int half, std::uint64_t* trace,
                                              const CallSignature& sig, Prepare prepare, Send send,
                                              Locate locate, Receive receive, FlagOf flag_of = nullptr) {
  constexpr bool kBlockFlags = !std::is_same_v<FlagOf, std::nullptr_t>;
  const std::uint64_t entered = trace != nullptr ? ptx::globaltimer() : 0;
  LlControl* mine = l.control_of(own, kind);
  // NOTE: here the seq is read and the mask copied before prepare's loads are issued, unlike the
  // direct dispatch and the pulled combine: issued ahead of them, the pushed combine's first partial
  // rows held its credit wait back (ll-dsv3 `credits` median 4.70 us against 2.59, span +0.5 us on an
  // H100, NOTES 11.90).
  const std::uint64_t seq = ll_launch_seq(mine, phases, half).value();
  const LlCreditLook look = (phases & kLlSend) ? ll_look_credits(mine, v.num_domain_ranks) : LlCreditLook{};
  const int parity = static_cast<int>(seq & 1u);
  const LlTracer tracer(trace, seq);
  // Read by the signals, each after a block barrier.
  const std::uint8_t* masked = store_mask_copy(v, load_mask_copy(v));
  if (phases & kLlSend) {
    tracer.clear();
    tracer.mark(kLlTraceEntry, entered);
    prepare();
    if (!ll_wait_credits(mine, parity, seq, v, op, look)) return;
    tracer.mark(kLlTraceCredits);
    ll_publish_signature<Peers>(v, l, own, kind, parity, sig);
    send(parity, seq);
    if constexpr (Peers::kStagesLocally) Peers::finish_sends();
    tracer.mark(kLlTraceSent);
    if constexpr (kBlockFlags) {
      __syncthreads();  // every write of the block comes before its flag (a release, cumulative)
      ll_flag_block<Peers>(
          v, own,
          [&](char* peer) { return flag_of(peer, parity, v.domain_rank, static_cast<int>(blockIdx.x)); }, seq,
          masked);
    } else {
      ll_signal_done<Peers>(v, l, own, kind, parity, masked);
    }
    ll_arrive_after_send<Peers>(mine, seq, half, tracer);
  } else {
    tracer.mark(kLlTraceRecvEntry, entered);
  }
  if (phases & kLlRecv) {
    // NOTE: the credits below are given even when a wait failed or a signature differed: a
    // mismatched peer then reports the mismatch too, not a timeout, and after a peer timed out the
    // survivors stay in step with each other (they mask it and carry on: mask_on_timeout). Nothing
    // is read from the staging then, so releasing it is safe.
    locate();
    bool arrived;
    if constexpr (kBlockFlags)
      arrived = ll_wait_block_flags(mine, parity, seq, sig, v, op,
                                    [&](int s, int b) { return flag_of(own, parity, s, b); });
    else
      arrived = ll_wait_done(mine, parity, seq, sig, v, op);
    if (arrived) {
      tracer.mark(kLlTraceDoneSeen);
      receive(parity);
    }
    tracer.mark(kLlTraceReceived);
    ll_give_credits<Peers>(v, l, own, kind, parity, masked);
    tracer.mark(kLlTraceExit);
  }
}

// topk_idx[i] of a [T, k] int64 or int32 tensor.
__device__ __forceinline__ std::int64_t ll_load_expert(const void* topk_idx, int idx_bytes, std::int64_t i) {
  return idx_bytes == 8 ? static_cast<const std::int64_t*>(topk_idx)[i]
                        : static_cast<std::int64_t>(static_cast<const std::int32_t*>(topk_idx)[i]);
}

}  // namespace epcomm
