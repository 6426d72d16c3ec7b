// Per-peer telemetry's host side: the device table (core/peer_counters.hpp) as PeerTraffic rows.
#pragma once

#include <vector>

#include "epcomm/telemetry.hpp"
#include "core/peer_counters.hpp"

namespace epcomm {

// The table's non-zero entries, operation-major then by peer: `table` is [kTelemetryOps][stride],
// `num_peers` domain peers, global rank = base_rank + domain index.
std::vector<PeerTraffic> telemetry_rows(const PeerCounters* table, int stride, int num_peers, int base_rank);

}  // namespace epcomm
