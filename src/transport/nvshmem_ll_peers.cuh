// The NVSHMEM policy of the low-latency kernels (the contract is in transport/ipc_ll_peers.cuh): the LL
// workspace is one symmetric allocation, so an offset in this rank's workspace is also the
// symmetric address of the same bytes on every PE; everything meant for a peer is staged there
// and put over. Every peer but this rank itself goes through NVSHMEM, also peers NVLink could
// reach (BufferOptions::ll_transport), so this path runs over NVLink peer-to-peer on one node
// exactly as it would across domains.
//
// NOTE: relocatable device code only, in epcomm_nvshmem (see nvshmem_device.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/domain_view.hpp"
#include "core/ptx.cuh"
#include "transport/nvshmem_device.cuh"

namespace epcomm {

struct NvshmemPeers {
  static constexpr bool kStagesLocally = true;

  // PE of domain rank d. NVSHMEM numbers PEs by global rank (NvshmemTransport checks it).
  __device__ __forceinline__ static int pe(const DomainView& v, int d) { return v.domain_base_rank + d; }

  // Only this rank itself is reached by stores.
  __device__ __forceinline__ static int first_direct(const DomainView& v) { return v.domain_rank; }
  __device__ __forceinline__ static int end_direct(const DomainView& v) { return v.domain_rank + 1; }

  __device__ __forceinline__ static char* target(const DomainView& /*v*/, char* own, int /*d*/) {
    return own;
  }

  __device__ __forceinline__ static void put_warp(const DomainView& v, void* dst, const void* src,
                                                  std::size_t bytes, int d) {
    nvshmem::put_nbi_warp(dst, src, bytes, pe(v, d));
  }
  __device__ __forceinline__ static void put(const DomainView& v, void* dst, const void* src,
                                             std::size_t bytes, int d) {
    nvshmem::put_nbi(dst, src, bytes, pe(v, d));
  }

  __device__ __forceinline__ static void finish_sends() { nvshmem::quiet(); }

  // `field` is in this rank's own workspace (target() is), so it is also the symmetric address of
  // rank d's field. This rank's own field is written locally. NOTE: the fence makes the signal a
  // release: the block's writes and completed puts (ll_arrive_last's barrier and fences come
  // first) are ordered before it.
  __device__ __forceinline__ static void signal(const DomainView& v, std::uint64_t* field,
                                                std::uint64_t value, int d) {
    ptx::fence_acq_rel_sys();
    if (d == v.domain_rank)
      ptx::st_release_sys(field, value);
    else
      nvshmem::signal_set(field, value, pe(v, d));
  }
  __device__ __forceinline__ static void signal_add(const DomainView& v, std::uint64_t* field,
                                                    std::uint64_t value, int d) {
    ptx::fence_acq_rel_sys();
    if (d == v.domain_rank)
      ptx::red_add_release_sys(field, value);
    else
      nvshmem::signal_add(field, value, pe(v, d));
  }
};

}  // namespace epcomm
