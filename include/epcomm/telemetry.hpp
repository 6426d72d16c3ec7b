// Per-peer telemetry (issue 22): what each Buffer moved to and from each peer and how long its
// kernels waited on each, per operation, counted on the device (so CUDA-graph replays count too).
// A straggler shows as the peer this rank waits on longest (slowest_peer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/export.hpp"

namespace epcomm {

struct PeerTraffic {
  std::string operation;             // "dispatch", "combine", "low-latency dispatch", "barrier", ...
  int peer = 0;                      // global rank
  std::uint64_t bytes_sent = 0;      // rows (with their scales and top-k data) written for the peer
  std::uint64_t bytes_received = 0;  // the same, received from the peer
  // Nanoseconds spent in waits on the peer that had to poll, summed over every waiting thread or
  // warp (several wait at once, so this exceeds wall time); 0 when the peer was always ready.
  std::uint64_t wait_ns = 0;
  std::uint64_t waits = 0;  // how many such waits
};

// What is counted: bytes of high-throughput dispatch (cached too) and combine both ways; low-latency
// dispatch sent (rows and scales, once per destination rank; the selection lists are not counted;
// the receiving side does not count them); low-latency combine both ways (the float32 partial
// rows; the weights are not counted). Waits of every operation.

// The peer with the largest wait_ns summed over all operations, or -1 when no wait polled.
EPCOMM_API int slowest_peer(const std::vector<PeerTraffic>& traffic);

}  // namespace epcomm
