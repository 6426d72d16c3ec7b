// What one multi-domain high-throughput call moves between NVLink domains (through the NICs) and
// over NVLink, counted from the run's own routing (docs/benchmark.md, "Multi-domain runs"; the
// route is docs/multi_domain.md's). Rank r is (domain r / G, index r % G); a token of (s, i)
// crosses once to each other domain d it reaches, to the forwarder (d, i), which writes it over
// NVLink to every other rank of d holding one of its experts. Combine is the reverse.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/workload.hpp"
#include "epcomm/multi_domain.hpp"

namespace epcomm::bench {

// Row counts of one rank in one dispatch (combine moves the same rows back).
struct MdRows {
  std::int64_t nic_send = 0;         // (its token, another domain the token reaches)
  std::int64_t nic_send_single = 0;  // of them, that domain holds the token's experts on one rank
  std::int64_t nic_recv = 0;         // as forwarder: (token of (s, i), this domain), s != its own
  std::int64_t nic_recv_single = 0;  // of them, one rank of this domain holds the token's experts
  std::int64_t nvl = 0;              // as forwarder: rows it writes to other ranks of its domain
};

// routings[r]: rank r's routing (all ranks). Throws epcomm::Error (invalid argument) when
// `ranks_per_domain` does not divide the ranks or the workload cannot run on them.
MdRows count_md_rows(const Workload& workload, const std::vector<RankRouting>& routings, int ranks_per_domain,
                     int rank_idx);

enum class MdOpKind { kDispatch, kCombine };

// Bytes of one rank in one call.
struct MdBytes {
  double nic_sent = 0;
  double nic_recv = 0;
  double nvl = 0;  // dispatch: written to other ranks of its domain; combine: read back from them
};

// `per_row` of the call's payload (MultiDomainShape::fp8 as dispatched; combine: BF16). Combine
// sends a partial back for every row dispatch received: BF16 where one rank contributed, else
// float32.
MdBytes md_bytes(const MdRows& rows, const MultiDomainRowBytes& per_row, MdOpKind op);

// The least time the NIC needs for `bytes` at `nic_gbps` (1 GB = 1e9 bytes), in microseconds: the
// busier direction (a NIC sends and receives at once).
double md_nic_floor_us(const MdBytes& bytes, double nic_gbps);

}  // namespace epcomm::bench
