// The plain-data view of a Buffer's NVLink domain that kernels receive by value: where every
// peer's communication region is mapped in this process, where the status word is, and the
// timeout of every bounded wait.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/device_status.hpp"
#include "core/peer_counters.hpp"

namespace epcomm {

// Largest NVLink domain a Buffer supports (an NVL72 rack). Not "8": nothing assumes a node size.
inline constexpr int kMaxDomainRanks = 72;
static_assert(kMaxDomainRanks <= kTelemetryPeers, "a domain peer indexes the telemetry table");

struct DomainView {
  int rank = 0;                            // global rank
  int domain_rank = 0;                     // index inside the domain (0..num_domain_ranks-1)
  int num_domain_ranks = 1;                // G
  int domain_base_rank = 0;                // global rank of domain index 0
  void* peer_base[kMaxDomainRanks] = {};   // each domain rank's region, mapped here (own included)
  // Low-latency mode across NVLink domains (transport/hybrid_ll_peers.cuh): the view then covers
  // every rank of the Buffer (domain_rank = rank, num_domain_ranks = R, domain_base_rank = 0), and
  // the ranks [nvl_first, nvl_first + nvl_ranks) of this rank's NVLink domain are reached by stores,
  // rank nvl_first + i through peer_base[i] (its workspace). 0 ranks: unused.
  int nvl_first = 0;
  int nvl_ranks = 0;
  DeviceStatus* status = nullptr;          // mapped host memory
  std::uint64_t* barrier_epoch = nullptr;  // this rank's count of domain barriers (device memory)
  std::uint64_t timeout_ns = 0;
  // [num_ranks] device memory, by global rank: 1 where the rank is masked on this rank
  // (Buffer::mask_rank). Kernels read it at run time, so a captured graph sees the current mask.
  // Null: no rank is ever masked.
  const std::uint8_t* masked = nullptr;
  // [kTelemetryOps][kTelemetryPeers] device memory (core/peer_counters.hpp), by view index
  // (rank - domain_base_rank); null: nothing counted.
  PeerCounters* telemetry = nullptr;
};
static_assert(std::is_trivially_copyable_v<DomainView>, "DomainView is passed to kernels by value");

}  // namespace epcomm
