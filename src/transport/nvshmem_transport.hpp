// The NVSHMEM transport, host side: initialises NVSHMEM over an epcomm::Bootstrap and owns the
// symmetric memory the low-latency kernels reach peers through (see nvshmem_device.cuh for the
// device side). Built only with EPCOMM_WITH_NVSHMEM, into the library epcomm_nvshmem.
//
//   NvshmemTransport transport(bootstrap);            // collective: every rank of the bootstrap
//   auto* signals = static_cast<std::uint64_t*>(transport.alloc(world * sizeof(std::uint64_t)));
//   ... kernels use nvshmem_device.cuh on `signals` ...
//   transport.barrier_all();
//
// NOTE: NVSHMEM is one state per process, so at most one NvshmemTransport lives at a time; a
// second one throws (kUnsupported). Every member function but rank()/num_ranks() is collective:
// all ranks call it, in the same order.
#pragma once

#include <cstddef>
#include <vector>

#include "epcomm/bootstrap.hpp"

namespace epcomm {

class NvshmemTransport {
 public:
  // Collective over `bootstrap`. Runs on the CUDA device current on the calling thread (select it
  // first). Before initialising it sets, for this process:
  //   NVSHMEM_DISABLE_NVLS=1            always (NVLink multicast is never used);
  //   NVSHMEM_REMOTE_TRANSPORT=none     unless the variable is already set (single machine).
  // Then rank 0 makes the unique id, the bootstrap broadcasts it, and every rank joins as PE
  // `bootstrap.rank()` of `bootstrap.size()`. Throws epcomm::Error (kNvshmem) when NVSHMEM fails
  // or numbers the PEs differently from the bootstrap.
  explicit NvshmemTransport(Bootstrap& bootstrap);
  // Collective: frees every alloc() and finalises NVSHMEM. Waits for the device first, so no
  // kernel still uses the memory. Never throws; problems are logged.
  ~NvshmemTransport();
  NvshmemTransport(const NvshmemTransport&) = delete;
  NvshmemTransport& operator=(const NvshmemTransport&) = delete;
  NvshmemTransport(NvshmemTransport&&) = delete;
  NvshmemTransport& operator=(NvshmemTransport&&) = delete;

  int rank() const { return rank_; }
  int num_ranks() const { return num_ranks_; }
  // True while an NvshmemTransport lives in this process (a second one would be refused).
  static bool in_use() noexcept;

  // Collective: `bytes` (> 0, equal on every rank) of symmetric device memory, uninitialised. The
  // same address names the matching allocation of every PE in nvshmem_device.cuh calls. Freed by
  // the destructor. Throws kInvalidArgument for 0 bytes, kNvshmem when the symmetric heap
  // (NVSHMEM_SYMMETRIC_SIZE) is exhausted.
  void* alloc(std::size_t bytes);

  // Collective: returns once every rank has entered it and the NVSHMEM operations issued before
  // it have completed. NOTE: it runs on NVSHMEM's own stream, which is not ordered after the
  // caller's: synchronise the streams of earlier kernels first.
  void barrier_all();

 private:
  int rank_ = 0;
  int num_ranks_ = 1;
  std::vector<void*> allocations_;  // in allocation order; freed in reverse
};

}  // namespace epcomm
