// How the low-latency kernels write into their peers: a compile-time policy that the one kernel
// family (ll_dispatch.cuh, ll_combine.cuh, ll_sync.cuh) takes as its template parameter `Peers`.
// This file holds the CUDA IPC policy, compiled into the main library; the NVSHMEM policy
// (transport/nvshmem_ll_peers.cuh) is compiled only into epcomm_nvshmem.
//
// A policy provides:
//   kStagesLocally   false: stores reach every peer's workspace directly (target(d) is the peer's
//                    workspace, mapped here). true: some peers are reached by puts: everything meant
//                    for such a peer is first stored at its offset in this rank's own workspace
//                    (that offset is where it belongs on the peer too, since the staging sections
//                    are indexed by source rank), then a put copies it over; the kernels then call
//                    put_warp/put and finish_sends.
//   first_direct(v), end_direct(v)  the ranks [first, end) this rank reaches by stores through
//                                 target() (this rank itself always among them); with
//                                 kStagesLocally every other rank is reached by puts
//                                 (ll_by_put in low_latency/ll_sync.cuh);
//   target(v, own, d)             the workspace this rank's stores for rank d go to: d's own
//                                 (mapped here) for a rank reached by stores, else `own`;
//   signal(v, field, value, d)    release-publishes `value` into the 64-bit `field` of rank d,
//                                 `field` being an address inside target(v, own, d): everything the
//                                 block stored before (and, for puts, completed) is visible to d
//                                 before the value;
//   signal_add(v, field, value, d)  the same, adding `value` to the field (a counter that many
//                                 blocks bump) instead of storing it;
//   credit_add(v, field, value, d)  adds `value` to the field with no ordering at all: for a
//                                 counter that says only "done reading" (ll_give_credits);
// and, when kStagesLocally, for a rank d reached by puts:
//   put_warp(v, dst, src, bytes, d)  the whole warp: copies [src, src + bytes) of this rank to
//                                 rank d, at the offset `dst` has in this rank's workspace
//                                 (non-blocking; src is in the workspace or, over NVLink only,
//                                 anywhere on this device);
//   put(v, dst, src, bytes, d)    the same by one thread;
//   finish_sends()                by every thread that issued puts: they have all completed.
//
// NOTE: kStagesLocally is a compile-time constant, so the IPC instantiation contains none of the
// staging or put code: its instructions are those of the direct-store kernels.
#pragma once

#include <cstdint>

#include "core/domain_view.hpp"
#include "core/ptx.cuh"
#include "transport/region_layout.hpp"

namespace epcomm {

// Every domain peer's NVLink region is mapped into this process (CUDA IPC): the kernels store
// straight into the peer's workspace, and a release store publishes a counter.
struct IpcPeers {
  static constexpr bool kStagesLocally = false;

  __device__ __forceinline__ static int first_direct(const DomainView& /*v*/) { return 0; }
  __device__ __forceinline__ static int end_direct(const DomainView& v) { return v.num_domain_ranks; }

  __device__ __forceinline__ static char* target(const DomainView& v, char* /*own*/, int d) {
    return RegionLayout::data(v.peer_base[d]);
  }

  // NOTE: the release orders everything this thread (and, after a block barrier, its block) wrote
  // or read before the store that tells the peer about it; it is itself the fence (ptx.cuh).
  __device__ __forceinline__ static void signal(const DomainView& /*v*/, std::uint64_t* field,
                                                std::uint64_t value, int /*d*/) {
    ptx::st_release_sys(field, value);
  }
  __device__ __forceinline__ static void signal_add(const DomainView& /*v*/, std::uint64_t* field,
                                                    std::uint64_t value, int /*d*/) {
    ptx::red_add_release_sys(field, value);
  }
  __device__ __forceinline__ static void credit_add(const DomainView& /*v*/, std::uint64_t* field,
                                                    std::uint64_t value, int /*d*/) {
    ptx::red_add_relaxed_sys(field, value);
  }
};

}  // namespace epcomm
