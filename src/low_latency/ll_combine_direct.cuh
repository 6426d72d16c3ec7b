// Low-latency combine when every peer is reached by stores (CUDA IPC), the direct form: an owner's
// warp reads a token's partials as soon as the holder blocks that wrote them have flagged them,
// instead of after every block of every holder. Under test: run when every rank made its Buffer
// with EPCOMM_LL_DIRECT_COMBINE=1 (LlCombineArgs::direct; ll_combine.cuh picks the kernel).
// Definitions in an unnamed namespace, one private copy per including translation unit.
//
// The phases are ll_run_phases' with this completion (its `done`): the send is the staging form's
// (ll_combine.cuh), then each block b release-stores seq into partials_done[p][this rank][b] of
// every peer p (ll_layout.hpp) instead of adding 1 to done[p]. The receive first waits, per block,
// for every holder's weights signal (block 0 of a holder stores its call signature, then its
// weights, then signals them: the first thing a holder sends) and checks the signatures; then each
// warp waits, for each of its items (t, part) and each holder s, for the flag of the block of s
// that sent (t, this rank, part) (wait_partials, ll_combine_recv.cuh), and sums as before.
#pragma once

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

template <typename Peers>
struct LlPartialsFlags {
  static_assert(!Peers::kStagesLocally, "the direct combine stores into every peer");
  __device__ void signal(const DomainView& v, const LlLayout& l, char* own, int, int parity,
                         std::uint64_t seq) const {
    __syncthreads();  // every partial of the block is stored before its flag (a release: cumulative)
    ll_flag_block<Peers>(
        v, own, [&](char* peer) { return l.partials_done(peer, parity, v.domain_rank, blockIdx.x); }, seq);
  }
  __device__ bool wait(const LlControl* mine, int parity, std::uint64_t seq, const CallSignature& sig,
                       const DomainView& v, OpId op) const {
    return ll_wait_signed(
        mine, parity, [&](int s) { return &mine->weights[parity][s]; }, seq, CounterId::kWeightsReady, sig, v,
        op);
  }
};

}  // namespace

}  // namespace epcomm
