// Per-peer telemetry's device table (epcomm/telemetry.hpp): plain data shared by the kernels that
// add to it and the host that reads it (core/telemetry.hpp). [kTelemetryOps][kMaxDomainRanks]
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

}  // namespace epcomm
