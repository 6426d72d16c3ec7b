// epcomm-bench --telemetry: every rank's per-peer telemetry of one row (epcomm/telemetry.hpp),
// gathered on rank 0 and summed per peer, so a row names the peer the others waited on longest.
// Plain C++ (the host-only pieces the CPU tests link); the gathering is collective.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/telemetry.hpp"

namespace epcomm::bench {

// One rank's record: what `rank` counted for `traffic.peer` (bytes it sent there, received from
// there, time it waited there).
struct RankTraffic {
  int rank = 0;
  PeerTraffic traffic;
};

// One peer's totals over every other rank's records of one operation.
struct PeerTotals {
  int peer = 0;
  std::uint64_t bytes_to = 0;    // bytes the others sent to the peer
  std::uint64_t bytes_from = 0;  // bytes the others received from it
  std::uint64_t wait_ns = 0;     // time the others waited on it (summed over waiting threads)
  std::uint64_t waits = 0;
};

struct OpTelemetry {
  std::string operation;          // PeerTraffic::operation ("dispatch", "low-latency combine", ...)
  std::vector<PeerTotals> peers;  // by peer, ascending
  int slowest_peer = -1;          // most wait_ns in this operation; -1 when no wait polled
};

// A row's telemetry, summed over the warm-up and timed calls (`calls`) of every rank.
struct RowTelemetry {
  int calls = 0;
  std::vector<OpTelemetry> operations;  // in the order the operations first appear
  int slowest_peer = -1;                // most wait_ns over all operations; -1 when no wait polled
  std::uint64_t slowest_wait_ns = 0;    // the others' wait on it, all operations
};

// Sums the records per operation and peer; ties go to the lower rank.
RowTelemetry summarize_telemetry(const std::vector<RankTraffic>& records, int calls);

// Collective: every rank's `mine` on every rank (rank order, then the order each rank gave).
// Operation names longer than kMaxOperationName bytes are cut there.
inline constexpr std::size_t kMaxOperationName = 31;
std::vector<RankTraffic> gather_telemetry(Bootstrap& bootstrap, const std::vector<PeerTraffic>& mine);

// The wire form of gather_telemetry (fixed-size records), exposed for the CPU tests.
std::vector<unsigned char> encode_traffic(const std::vector<PeerTraffic>& rows, std::size_t num_records);
std::vector<PeerTraffic> decode_traffic(const unsigned char* bytes, std::size_t num_records);

// Printed lines ("# telemetry ...") for the row named `row_name`: its slowest peer in words, then
// per operation one line per peer. Empty input: says nothing was counted.
std::string format_telemetry(const std::string& row_name, const RowTelemetry& t);
// The JSON object of a row's "telemetry" member (docs/benchmark.md).
std::string telemetry_json(const RowTelemetry& t);

}  // namespace epcomm::bench
