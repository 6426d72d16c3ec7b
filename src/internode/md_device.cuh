// Device helpers of the multi-domain kernels (epcomm_nvshmem only): the NVSHMEM operations they
// use, each with the ordering it gives, and the bounded waits on symmetric words. Only NVSHMEM's
// public device API; waits are our own loops (never nvshmem_*wait_until, which has no bound).
#pragma once

#include <nvshmem.h>
#include <nvshmemx.h>

#include <cstdint>

#include "core/ptx.cuh"
#include "core/wait.cuh"
#include "internode/md_args.hpp"

namespace epcomm::md {

// The whole warp (converged, same arguments): puts `bytes` from `src_sym` (symmetric, so it may
// leave through a NIC) to `dst_sym` on `pe`, then sets `sig_sym` there to `value`; the signal is
// delivered after the whole payload. The source is reusable only after quiet().
__device__ __forceinline__ void put_signal_set_warp(void* dst_sym, const void* src_sym, std::size_t bytes,
                                                    std::uint64_t* sig_sym, std::uint64_t value, int pe) {
  nvshmemx_putmem_signal_nbi_warp(dst_sym, src_sym, bytes, sig_sym, value, NVSHMEM_SIGNAL_SET, pe);
}

// One thread: adds `delta` to `sig_sym` on `pe` (credits; adds from one forwarder accumulate).
__device__ __forceinline__ void signal_add(std::uint64_t* sig_sym, std::uint64_t delta, int pe) {
  nvshmemx_signal_op(sig_sym, delta, NVSHMEM_SIGNAL_ADD, pe);
}

// One thread: every put this thread issued has completed (its source may be rewritten).
__device__ __forceinline__ void quiet() {
  nvshmem_quiet();
}

template <typename T>
__device__ __forceinline__ T* at(const MdPlace& place, std::size_t offset) {
  return reinterpret_cast<T*>(place.sym + offset);
}

// A symmetric word is `expected` (acquire, system scope): one poll, no wait. Slot flags are
// compared for equality (md_slot_flag's values are unique, not ordered across layouts).
__device__ __forceinline__ bool flag_is(const std::uint64_t* flag, std::uint64_t expected) {
  if (ptx::ld_relaxed_sys(flag) != expected) return false;
  return ptx::ld_acquire_sys(flag) == expected;
}

// Bounded wait for *flag == expected; a timeout names `peer` (a rank) and its domain.
__device__ inline bool wait_flag(const std::uint64_t* flag, std::uint64_t expected, const DomainView& v,
                                 OpId op, CounterId counter, int peer, int peer_domain) {
  const std::uint64_t start = ptx::globaltimer();
  std::uint64_t last_check = start;
  for (std::uint32_t spins = 1;; ++spins) {
    if (flag_is(flag, expected)) return true;
    if (spins > kQuickPolls) ptx::backoff(spins > 4 * kQuickPolls ? kMaxBackoffNs : kMinBackoffNs);
    if ((spins & 63u) != 0) continue;
    const std::uint64_t now = ptx::globaltimer();
    if (now - last_check < kStatusCheckNs) continue;  // the status word is host memory: read it rarely
    last_check = now;
    if (sync_failed(v.status)) return false;
    if (now - start > wait_limit_ns(v.timeout_ns, peer == v.rank)) {
      report_failure(v.status, StatusCode::kTimeout, op, counter, v.rank, peer,
                     static_cast<std::int64_t>(expected),
                     static_cast<std::int64_t>(ptx::ld_relaxed_sys(flag)), peer_domain);
      return false;
    }
  }
}

// Bounded wait for *counter >= expected, naming the peer's domain on timeout. It stops early on this
// rank's timeout only (wait_at_least), not on a mismatch: it waits for words (step 2's records, the
// dispatch's credits) that a peer writes before any wait of its own, and a call that met another
// call is stopped before it (sync_failed at the kernels' entries and at notify's step 2).
__device__ inline bool wait_geq(const std::uint64_t* counter, std::uint64_t expected, const DomainView& v,
                                OpId op, CounterId counter_id, int peer, int peer_domain) {
  return wait_at_least(counter, expected, WaitBound{v.timeout_ns, v.status, v.rank}, op, counter_id, peer,
                       static_cast<std::uint64_t*>(nullptr), peer_domain);
}

}  // namespace epcomm::md
