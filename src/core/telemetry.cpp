#include "core/telemetry.hpp"

#include <map>

#include "core/status_message.hpp"

namespace epcomm {

std::vector<PeerTraffic> telemetry_rows(const PeerCounters* table, int stride, int num_peers, int base_rank) {
  std::vector<PeerTraffic> rows;
  for (int op = 0; op < kTelemetryOps; ++op) {
    for (int p = 0; p < num_peers; ++p) {
      const PeerCounters& c = table[op * stride + p];
      if (c.bytes_sent == 0 && c.bytes_received == 0 && c.wait_ns == 0 && c.waits == 0) continue;
      rows.push_back({to_string(static_cast<OpId>(op)), base_rank + p, c.bytes_sent, c.bytes_received,
                      c.wait_ns, c.waits});
    }
  }
  return rows;
}

int slowest_peer(const std::vector<PeerTraffic>& traffic) {
  std::map<int, std::uint64_t> waited;
  for (const PeerTraffic& t : traffic) waited[t.peer] += t.wait_ns;
  int slowest = -1;
  std::uint64_t most = 0;
  for (const auto& [peer, ns] : waited) {
    if (ns > most) {
      most = ns;
      slowest = peer;
    }
  }
  return slowest;
}

}  // namespace epcomm
