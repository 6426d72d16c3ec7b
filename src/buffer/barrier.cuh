// The domain barrier as a device function, so kernels can open with one.
#pragma once

#include "transport/region_layout.hpp"
#include "core/call_signature.cuh"
#include "core/wait.cuh"

namespace epcomm {

static_assert(sizeof(CallSignature) + sizeof(std::uint64_t) <= RegionLayout::kCallRecordBytes);

// Called by every thread of ONE block (blockDim.x >= num_domain_ranks). Thread p signals domain
// peer p and waits for p's signal. Epochs only grow, so slots never need resetting; every rank
// must pass the same number of barriers. A masked peer is neither signalled nor waited for. Returns
// false (for all threads) if a wait failed.
// With `sig` (the call this barrier opens), thread p first writes it with the epoch into peer p's
// call record, and after the wait compares p's with it: a peer whose call differs, or whose record
// is not of this epoch (it came to this barrier from another operation), is reported
// (kPeerMismatch) and the barrier returns false.
__device__ __forceinline__ bool domain_barrier_block(const DomainView& view, OpId op,
                                                     const CallSignature* sig = nullptr) {
  __shared__ std::uint64_t epoch;
  if (threadIdx.x == 0) epoch = *view.barrier_epoch + 1;
  __syncthreads();
  bool ok = true;
  const int peer = static_cast<int>(threadIdx.x);
  if (peer < view.num_domain_ranks && !peer_masked(view, peer)) {
    const int parity = static_cast<int>(epoch & 1u);
    if (sig != nullptr) {
      char* record = RegionLayout::call_record(view.peer_base[peer], parity, view.domain_rank);
      store_signature(reinterpret_cast<CallSignature*>(record), *sig);
      *reinterpret_cast<std::uint64_t*>(record + sizeof(CallSignature)) = epoch;
    }
    // NOTE: the release makes this rank's earlier writes to the peer (from any block, ordered by
    // the preceding __syncthreads or kernel boundary; the call record by this thread) visible
    // before the signal (ptx.cuh).
    ptx::st_release_sys(RegionLayout::barrier_slots(view.peer_base[peer]) + view.domain_rank, epoch);
    const std::uint64_t* my_slot = RegionLayout::barrier_slots(view.peer_base[view.domain_rank]) + peer;
    ok = wait_at_least(my_slot, epoch, view, op, CounterId::kBarrierSignal, view.domain_base_rank + peer);
    // NOTE: a peer masked during the wait was not waited for: what it left is not read.
    if (ok && sig != nullptr && !peer_masked(view, peer)) {
      const char* record = RegionLayout::call_record(view.peer_base[view.domain_rank], parity, peer);
      const std::uint64_t stamp = *reinterpret_cast<const volatile std::uint64_t*>(record + sizeof(CallSignature));
      if (stamp != epoch) {  // the peer's barrier opened no call, or another kind of call
        report_failure(view.status, StatusCode::kPeerMismatch, op, CounterId::kNone, view.rank,
                       view.domain_base_rank + peer, sig->get(SigField::kOp), 0, /*peer_domain=*/-1,
                       static_cast<std::int32_t>(SigField::kOp));
        ok = false;
      } else {
        ok = signature_matches(reinterpret_cast<const CallSignature*>(record), *sig, view, op,
                               view.domain_base_rank + peer);
      }
    }
  }
  ok = __syncthreads_and(ok);
  if (threadIdx.x == 0) *view.barrier_epoch = epoch;
  return ok;
}

}  // namespace epcomm
