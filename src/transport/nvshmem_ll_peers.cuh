// The NVSHMEM policies of the low-latency kernels (the contract is in transport/ipc_ll_peers.cuh):
// the LL workspace is one symmetric allocation, so an offset in this rank's workspace is also the
// symmetric address of the same bytes on every PE. A range of ranks is reached by stores (`Direct`:
// first(v), end(v), and workspace(v, own, d), where this process stores rank d's bytes); everything
// meant for any other rank is staged in this rank's own workspace and put over, and signalled by
// NVSHMEM signal operations.
//
// NvshmemPeers: only this rank itself is reached by stores; every other peer goes through NVSHMEM,
// also peers NVLink could reach (BufferOptions::ll_transport), so this path runs over NVLink
// peer-to-peer on one node exactly as it would across domains. HybridPeers
// (transport/hybrid_ll_peers.cuh) reaches this rank's whole NVLink domain by stores.
//
// Memory ordering: stores are published by a release store or add at system scope (as IpcPeers);
// puts are completed (finish_sends, nvshmem_quiet, by every thread that issued any) before the
// block's signal, an NVSHMEM signal operation after a system-scope fence. Credits are unordered
// adds (ll_give_credits).
//
// NOTE: relocatable device code only, in epcomm_nvshmem (see nvshmem_device.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/domain_view.hpp"
#include "core/ptx.cuh"
#include "low_latency/ll_reach.hpp"
#include "transport/nvshmem_device.cuh"

namespace epcomm {

template <typename Direct>
struct NvshmemStagingPeers {
  static constexpr bool kStagesLocally = true;

  __device__ __forceinline__ static int first_direct(const DomainView& v) { return Direct::first(v); }
  __device__ __forceinline__ static int end_direct(const DomainView& v) { return Direct::end(v); }
  __device__ __forceinline__ static bool direct(const DomainView& v, int d) {
    return ll_rank_in(Direct::first(v), Direct::end(v) - Direct::first(v), d);
  }

  __device__ __forceinline__ static int pe(const DomainView& v, int d) { return ll_pe(v, d); }

  __device__ __forceinline__ static char* target(const DomainView& v, char* own, int d) {
    return direct(v, d) ? Direct::workspace(v, own, d) : own;
  }

  // Called for ranks reached by puts (ll_by_put); a rank reached by stores has its bytes already.
  __device__ __forceinline__ static void put_warp(const DomainView& v, void* dst, const void* src,
                                                  std::size_t bytes, int d) {
    if (!direct(v, d)) nvshmem::put_nbi_warp(dst, src, bytes, pe(v, d));
  }
  __device__ __forceinline__ static void put(const DomainView& v, void* dst, const void* src,
                                             std::size_t bytes, int d) {
    if (!direct(v, d)) nvshmem::put_nbi(dst, src, bytes, pe(v, d));
  }

  __device__ __forceinline__ static void finish_sends() { nvshmem::quiet(); }

  // `field` is inside target(v, own, d): rank d's workspace as stored into here (a release store
  // reaches it), or this rank's own, whose offset is the symmetric address of d's field. NOTE: for
  // a rank reached by puts the fence makes the NVSHMEM signal a release: the block's writes and
  // completed puts (the block barrier before the signal comes first) are ordered before it; a
  // release store is its own fence (ptx.cuh).
  __device__ __forceinline__ static void signal(const DomainView& v, std::uint64_t* field,
                                                std::uint64_t value, int d) {
    if (direct(v, d)) {
      ptx::st_release_sys(field, value);
    } else {
      ptx::fence_acq_rel_sys();
      nvshmem::signal_set(field, value, pe(v, d));
    }
  }
  __device__ __forceinline__ static void signal_add(const DomainView& v, std::uint64_t* field,
                                                    std::uint64_t value, int d) {
    if (direct(v, d)) {
      ptx::red_add_release_sys(field, value);
    } else {
      ptx::fence_acq_rel_sys();
      nvshmem::signal_add(field, value, pe(v, d));
    }
  }
  // A credit orders nothing (ll_give_credits): no fence either way.
  __device__ __forceinline__ static void credit_add(const DomainView& v, std::uint64_t* field,
                                                    std::uint64_t value, int d) {
    if (direct(v, d))
      ptx::red_add_relaxed_sys(field, value);
    else
      nvshmem::signal_add(field, value, pe(v, d));
  }
};

// This rank alone is reached by stores, into its own workspace.
struct NvshmemSelfOnly {
  __device__ __forceinline__ static int first(const DomainView& v) { return v.domain_rank; }
  __device__ __forceinline__ static int end(const DomainView& v) { return v.domain_rank + 1; }
  __device__ __forceinline__ static char* workspace(const DomainView& /*v*/, char* own, int /*d*/) {
    return own;
  }
};

using NvshmemPeers = NvshmemStagingPeers<NvshmemSelfOnly>;

}  // namespace epcomm
