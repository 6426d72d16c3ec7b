// Per-peer telemetry's device table (epcomm/telemetry.hpp): plain data shared by the kernels that
// add to it and the host that reads it (core/telemetry.hpp). [kTelemetryOps][kTelemetryPeers]
// counters in device memory, indexed by OpId and domain peer; kernels add with atomics, so CUDA
// graph replays count like eager calls.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/device_status.hpp"

namespace epcomm {

struct PeerCounters {
  unsigned long long bytes_sent;  // unsigned long long: what atomicAdd takes
  unsigned long long bytes_received;
  unsigned long long wait_ns;
  unsigned long long waits;
};
static_assert(std::is_trivially_copyable_v<PeerCounters> && sizeof(PeerCounters) == 32);

inline constexpr int kTelemetryOps = static_cast<int>(OpId::kLlCombine) + 1;
// The table's row length: every peer a kernel's view can name (kMaxDomainRanks in one NVLink
// domain; a low-latency Buffer across domains indexes by global rank, up to kLlMaxRanks).
inline constexpr int kTelemetryPeers = 128;

}  // namespace epcomm
