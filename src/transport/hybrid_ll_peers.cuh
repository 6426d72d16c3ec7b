// The hybrid policy of the low-latency kernels (the contract is in transport/ipc_ll_peers.cuh), for
// a Buffer whose ranks span several NVLink domains: the workspace is one NVSHMEM symmetric
// allocation, as with NvshmemPeers; a peer in this rank's NVLink domain is reached by stores
// through its workspace's load/store address (nvshmem_ptr, taken on the host when the Buffer is
// made: DomainView::peer_base), as IpcPeers does; a peer in another domain by staging here and
// NVSHMEM puts and signals, as NvshmemPeers does (transport/nvshmem_ll_peers.cuh holds the shared
// policy and its memory ordering). Which one is decided per peer at run time from its rank
// (DomainView::nvl_first, nvl_ranks), so one launch serves both.
//
// NOTE: relocatable device code only, in epcomm_nvshmem (see nvshmem_device.cuh).
#pragma once

#include "core/domain_view.hpp"
#include "low_latency/ll_reach.hpp"
#include "transport/nvshmem_ll_peers.cuh"

namespace epcomm {

// The ranks of this rank's NVLink domain (its own included), each through its mapped workspace.
struct NvlDomainRanks {
  __device__ __forceinline__ static int first(const DomainView& v) { return v.nvl_first; }
  __device__ __forceinline__ static int end(const DomainView& v) { return v.nvl_first + v.nvl_ranks; }
  __device__ __forceinline__ static char* workspace(const DomainView& v, char* /*own*/, int d) {
    return static_cast<char*>(v.peer_base[ll_nvl_slot(v, d)]);
  }
};

using HybridPeers = NvshmemStagingPeers<NvlDomainRanks>;

}  // namespace epcomm
