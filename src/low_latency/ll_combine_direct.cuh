// Low-latency combine when every peer is reached by stores (CUDA IPC), the direct form: an owner's
// warp reads a token's partials as soon as the holder blocks that wrote them have flagged them,
// instead of after every block of every holder. Under test: run when every rank made its Buffer
// with EPCOMM_LL_DIRECT_COMBINE=1 (LlCombineArgs::direct; ll_combine.cuh picks the form at run
// time). Definitions in an unnamed namespace, one private copy per including translation unit.
//
// Send: as the staging form (ll_combine.cuh), then each block b release-stores seq into
// partials_done[p][this rank][b] of every peer p (ll_layout.hpp) instead of adding 1 to done[p].
// Receive, every block: wait for every holder's weights signal (block 0 of a holder stores its call
// signature, then its weights, then signals them: the first thing a holder sends) and check the
// signatures; then each warp waits, for each of its items (t, part) and each holder s, for the flag
// of the block of s that sent (t, this rank, part) (wait_partials, ll_combine_recv.cuh), and sums
// as before.
// Credits, sequence numbers and the last block's bookkeeping are the staging form's.
#pragma once

#include <cstdint>

#include "core/call_signature.cuh"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// Every thread of the block: every holder's call signature equals this call's, read once its
// weights are in. False (for all) on a timeout or a mismatch (reported).
__device__ __forceinline__ bool ll_combine_sources_match(const LlCombineArgs& a, int parity,
                                                         std::uint64_t seq) {
  const DomainView& v = a.view;
  const LlControl* mine = a.layout.control_of(a.workspace, kLlKindCombine);
  bool ok = true;
  for (int s = threadIdx.x; s < v.num_domain_ranks && ok; s += blockDim.x) {
    const int peer = v.domain_base_rank + s;
    ok = wait_at_least<Polls::kAcquire>(&mine->weights[parity][s], seq, v, OpId::kLlCombine,
                                        CounterId::kWeightsReady, peer);
    if (ok && !peer_masked(v, s))
      ok = signature_matches(&mine->signature[parity][s], a.signature, v, OpId::kLlCombine, peer);
  }
  return __syncthreads_and(ok);
}

// The direct form's phases (every thread of every block): ll_run_phases' steps with per-block
// flags for the partials; `prepare`, `send`, `locate` as there, `receive(parity, seq)`.
template <typename Peers, typename Prepare, typename Send, typename Locate, typename Receive>
__device__ __forceinline__ void ll_run_combine_direct(const LlCombineArgs& a, Prepare prepare, Send send,
                                                      Locate locate, Receive receive) {
  static_assert(!Peers::kStagesLocally, "the direct combine stores into every peer");
  const std::uint64_t entered = a.trace != nullptr ? ptx::globaltimer() : 0;
  const DomainView& v = a.view;
  const LlLayout& l = a.layout;
  LlControl* mine = l.control_of(a.workspace, kLlKindCombine);
  const std::uint64_t seq = ll_launch_seq(mine, a.phases, a.half);
  const int parity = static_cast<int>(seq & 1u);
  const LlTracer tracer(a.trace, seq);
  if (a.phases & kLlSend) {
    tracer.clear();
    tracer.mark(kLlTraceEntry, entered);
    prepare();
    if (!ll_wait_credits(mine, parity, seq, v, OpId::kLlCombine)) return;
    tracer.mark(kLlTraceCredits);
    ll_publish_signature<Peers>(v, l, a.workspace, kLlKindCombine, parity, a.signature);
    send(parity, seq);
    tracer.mark(kLlTraceSent);
    __syncthreads();  // every partial of the block is stored before its flag (a release: cumulative)
    for (int p = threadIdx.x; p < v.num_domain_ranks; p += blockDim.x)
      if (!peer_masked(v, p))
        Peers::signal(v, l.partials_done(Peers::target(v, a.workspace, p), parity, v.domain_rank, blockIdx.x),
                      seq, p);
    ll_arrive_after_send(mine, seq, a.half, tracer);
  } else {
    tracer.mark(kLlTraceRecvEntry, entered);
  }
  if (a.phases & kLlRecv) {
    // NOTE: as in ll_run_phases, the credits are given even when a wait failed or a signature
    // differed (nothing is read from the staging then). `done-seen` marks the signatures' check.
    locate();
    if (ll_combine_sources_match(a, parity, seq)) {
      tracer.mark(kLlTraceDoneSeen);
      receive(parity, seq);
    }
    tracer.mark(kLlTraceReceived);
    ll_give_credits<Peers>(v, l, a.workspace, kLlKindCombine, parity);
    tracer.mark(kLlTraceExit);
  }
}

}  // namespace

}  // namespace epcomm
