// The hybrid policy of the low-latency kernels (the contract is in transport/ipc_ll_peers.cuh), for
// a Buffer whose ranks span several NVLink domains: the workspace is one NVSHMEM symmetric
// allocation, as with NvshmemPeers; a peer in this rank's NVLink domain is reached by stores
// through its workspace's load/store address (nvshmem_ptr, taken on the host when the Buffer is
// made: DomainView::peer_base), as IpcPeers does; a peer in another domain by staging here and
// NVSHMEM puts and signals, as NvshmemPeers does. Which one is decided per peer at run time from
// its rank (DomainView::nvl_first, nvl_ranks), so one launch serves both.
//
// Memory ordering: stores into a domain peer are published by a system-scope fence and a release
// store or add (as IpcPeers); puts to a peer in another domain are completed (finish_sends, i.e.
// nvshmem_quiet, by every thread that issued them) before the block's signal, which is an NVSHMEM
// signal operation after the same fence (as NvshmemPeers).
//
// NOTE: relocatable device code only, in epcomm_nvshmem (see nvshmem_device.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/domain_view.hpp"
#include "core/ptx.cuh"
#include "transport/nvshmem_device.cuh"

namespace epcomm {

struct HybridPeers {
  static constexpr bool kStagesLocally = true;

  // The ranks of this rank's NVLink domain (its own included), reached by stores.
  __device__ __forceinline__ static int first_direct(const DomainView& v) { return v.nvl_first; }
  __device__ __forceinline__ static int end_direct(const DomainView& v) { return v.nvl_first + v.nvl_ranks; }
  __device__ __forceinline__ static bool direct(const DomainView& v, int d) {
    return static_cast<unsigned>(d - v.nvl_first) < static_cast<unsigned>(v.nvl_ranks);
  }

  // The view covers every rank (domain_base_rank 0), and NVSHMEM numbers PEs by global rank.
  __device__ __forceinline__ static int pe(const DomainView& v, int d) { return v.domain_base_rank + d; }

  __device__ __forceinline__ static char* target(const DomainView& v, char* own, int d) {
    return direct(v, d) ? static_cast<char*>(v.peer_base[d - v.nvl_first]) : own;
  }

  // Called for ranks reached by puts only (ll_by_put); a domain peer got its bytes by stores.
  __device__ __forceinline__ static void put_warp(const DomainView& v, void* dst, const void* src,
                                                  std::size_t bytes, int d) {
    if (!direct(v, d)) nvshmem::put_nbi_warp(dst, src, bytes, pe(v, d));
  }
  __device__ __forceinline__ static void put(const DomainView& v, void* dst, const void* src,
                                             std::size_t bytes, int d) {
    if (!direct(v, d)) nvshmem::put_nbi(dst, src, bytes, pe(v, d));
  }

  __device__ __forceinline__ static void finish_sends() { nvshmem::quiet(); }

  // `field` is inside target(v, own, d): the domain peer's workspace itself (a release store
  // reaches it), or this rank's own, whose offset is the symmetric address of d's field.
  __device__ __forceinline__ static void signal(const DomainView& v, std::uint64_t* field,
                                                std::uint64_t value, int d) {
    ptx::fence_acq_rel_sys();
    if (direct(v, d))
      ptx::st_release_sys(field, value);
    else
      nvshmem::signal_set(field, value, pe(v, d));
  }
  __device__ __forceinline__ static void signal_add(const DomainView& v, std::uint64_t* field,
                                                    std::uint64_t value, int d) {
    ptx::fence_acq_rel_sys();
    if (direct(v, d))
      ptx::red_add_release_sys(field, value);
    else
      nvshmem::signal_add(field, value, pe(v, d));
  }
};

}  // namespace epcomm
