// The NVLink ceiling: what plain peer copies reach, measured in the same run as everything else.
#pragma once

#include <cstddef>

#include "bench/timing.hpp"
#include "epcomm/bootstrap.hpp"

namespace epcomm::bench {

struct Ceiling {
  bool measured = false;      // false on one rank
  double all_pairs_gbps = 0;  // every GPU copies to every other at once: per GPU outgoing GB/s
  double one_way_gbps = 0;    // rank 0 copies to rank 1 alone
};

// Collective. Enables peer access where the hardware allows it, then, through CUDA IPC
// (cudaIpcMemLazyEnablePeerAccess), each rank copies `bytes_per_peer` into a slot of every other
// rank's receive buffer with cudaMemcpyAsync, one stream per peer, all ranks released together by a
// barrier before each timed call. Time: events around one all-pairs round; median per rank, max over
// ranks; bandwidth = (R - 1) * bytes_per_peer / time. The ranks must share one host.
Ceiling measure_ceiling(Bootstrap& bootstrap, int device, std::size_t bytes_per_peer,
                        const TimingOptions& options);

// Collective: enables this device's access to every other rank's device that cudaDeviceCanAccessPeer
// allows (an already enabled peer is fine).
void enable_peer_access(Bootstrap& bootstrap, int device);

}  // namespace epcomm::bench
