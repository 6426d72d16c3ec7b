// The NVSHMEM transport, device side: the few NVSHMEM operations epcomm's kernels use to reach a
// peer through the symmetric heap (over NVLink peer-to-peer in tests, over IBGDA, a proxy or
// libfabric across domains), each with the ordering it gives. Only public NVSHMEM device APIs.
//
// NOTE: include only in relocatable device code (-rdc) of a target linked with epcomm_nvshmem,
// and launch only while an NvshmemTransport is alive (nvshmem_transport.hpp).
//
// Arguments named `*_sym` are symmetric addresses: a pointer returned by NvshmemTransport::alloc()
// on the calling PE (plus an offset); NVSHMEM turns it into the same allocation on `pe`. `src` is
// local device memory; outside NVLink peer-to-peer it must be symmetric as well.
//
// The memory model in short:
//   - "nbi" operations return before the data has left: the source must stay unchanged until the
//     operation completes (nvshmem_quiet(), or a barrier, on the sender).
//   - operations to one PE are delivered in any order unless nvshmem_fence() separates them;
//     put_signal_nbi is the exception: its signal is delivered after its payload.
//   - a receiver learns that data arrived only from a signal it observes (wait_signal_geq), never
//     by looking at the data.
#pragma once

#include <nvshmem.h>
#include <nvshmemx.h>

#include <cstddef>
#include <cstdint>

#include "core/device_status.hpp"
#include "core/ptx.cuh"
#include "core/wait.cuh"

namespace epcomm::nvshmem {

// One thread: starts copying `bytes` from `src` to `dst_sym` on `pe`. Gives no order with the
// thread's later operations to `pe` (a signal_add after it may arrive first: use put_signal_nbi).
__device__ __forceinline__ void put_nbi(void* dst_sym, const void* src, std::size_t bytes, int pe) {
  nvshmem_putmem_nbi(dst_sym, src, bytes, pe);
}

// The whole warp (all 32 lanes, converged, same arguments): put_nbi with the copy spread over the
// lanes. Same (absent) ordering as put_nbi.
__device__ __forceinline__ void put_nbi_warp(void* dst_sym, const void* src, std::size_t bytes, int pe) {
  nvshmemx_putmem_nbi_warp(dst_sym, src, bytes, pe);
}

// One thread: atomically adds `v` to the 64-bit signal `sig_sym` on `pe`. Adds from any number of
// senders accumulate (a counter). Not ordered after the thread's earlier puts to `pe` unless an
// nvshmem_fence() comes between them; to publish a payload, use put_signal_nbi instead.
__device__ __forceinline__ void signal_add(std::uint64_t* sig_sym, std::uint64_t v, int pe) {
  nvshmemx_signal_op(sig_sym, v, NVSHMEM_SIGNAL_ADD, pe);
}

// One thread: sets the 64-bit signal `sig_sym` on `pe` to `v`, for a signal whose values only grow
// (each is the newest of a sequence; the receiver waits for >= its value). Like signal_add it is
// not ordered after the thread's earlier puts: complete them first (quiet). Over NVLink
// peer-to-peer it is a plain store, so precede it with a release fence (ptx::fence_acq_rel_sys).
__device__ __forceinline__ void signal_set(std::uint64_t* sig_sym, std::uint64_t v, int pe) {
  nvshmemx_signal_op(sig_sym, v, NVSHMEM_SIGNAL_SET, pe);
}

// One thread: every put this thread issued before it has completed (its data is in place on the
// target, and its source may be reused). Operations of other threads are not covered: each thread
// that issued puts calls it (then a block barrier extends the guarantee to the block).
__device__ __forceinline__ void quiet() {
  nvshmem_quiet();
}

// One thread: put_nbi of `bytes`, then adds `v` to `sig_sym` on `pe`. The signal is delivered
// after the whole payload, so a receiver that observes the added value (wait_signal_geq) reads the
// payload complete. The source is reusable only after completion (quiet or barrier).
__device__ __forceinline__ void put_signal_nbi(void* dst_sym, const void* src, std::size_t bytes,
                                               std::uint64_t* sig_sym, std::uint64_t v, int pe) {
  nvshmem_putmem_signal_nbi(dst_sym, src, bytes, sig_sym, v, NVSHMEM_SIGNAL_ADD, pe);
}

// The whole warp (all 32 lanes, converged, same arguments): put_signal_nbi with the copy spread
// over the lanes; one signal add per call, delivered after the payload of every lane.
__device__ __forceinline__ void put_signal_nbi_warp(void* dst_sym, const void* src, std::size_t bytes,
                                                    std::uint64_t* sig_sym, std::uint64_t v, int pe) {
  nvshmemx_putmem_signal_nbi_warp(dst_sym, src, bytes, sig_sym, v, NVSHMEM_SIGNAL_ADD, pe);
}

// One thread: waits until this PE's signal `*sig_local` (a symmetric address of the calling PE)
// is >= `expected`. Signals only grow (signal_add, put_signal_nbi), so callers wait for running
// totals (for example round * messages per round). The poll is an acquire load at system scope:
// after a true return, this thread reads every payload delivered with the signals it counted;
// a __syncthreads() after the wait extends that to the block.
//
// Bounded like core/wait.cuh: after `timeout_ns` it records a kTimeout in `status` (first
// failure wins; `rank` observed it, waiting for `peer`, on `counter` during `op`, with the
// expected and last observed values) and returns false; it also returns false early once another
// failure is in `status`. `status` may be null (nothing is recorded).
__device__ inline bool wait_signal_geq(const std::uint64_t* sig_local, std::uint64_t expected,
                                       std::uint64_t timeout_ns, DeviceStatus* status, int rank, int peer,
                                       OpId op, CounterId counter) {
  return wait_at_least(sig_local, expected, WaitBound{timeout_ns, status, rank}, op, counter, peer);
}

}  // namespace epcomm::nvshmem
