// The domain barrier as a device function, so kernels can open with one.
#pragma once

#include "transport/region_layout.hpp"
#include "core/wait.cuh"

namespace epcomm {

// Called by every thread of ONE block (blockDim.x >= num_domain_ranks). Thread p signals domain
// peer p and waits for p's signal. Epochs only grow, so slots never need resetting; every rank
// must pass the same number of barriers. A masked peer is neither signalled nor waited for. Returns
// false (for all threads) if a wait failed.
__device__ __forceinline__ bool domain_barrier_block(const DomainView& view, OpId op) {
  __shared__ std::uint64_t epoch;
  if (threadIdx.x == 0) epoch = *view.barrier_epoch + 1;
  __syncthreads();
  bool ok = true;
  const int peer = static_cast<int>(threadIdx.x);
  if (peer < view.num_domain_ranks && !peer_masked(view, peer)) {
    // NOTE: the release makes this rank's earlier writes to the peer (from any block, ordered by
    // the preceding __syncthreads or kernel boundary) visible before the signal (ptx.cuh).
    ptx::st_release_sys(RegionLayout::barrier_slots(view.peer_base[peer]) + view.domain_rank, epoch);
    const std::uint64_t* my_slot = RegionLayout::barrier_slots(view.peer_base[view.domain_rank]) + peer;
    ok = wait_at_least(my_slot, epoch, view, op, CounterId::kBarrierSignal, view.domain_base_rank + peer);
  }
  ok = __syncthreads_and(ok);
  if (threadIdx.x == 0) *view.barrier_epoch = epoch;
  return ok;
}

}  // namespace epcomm
