// The doctor's per-peer telemetry (epcomm/telemetry.hpp) of one phase of the tiny case, in words:
// what the ranks moved between them and the peer they waited on longest. Plain C++: the worker
// gathers every rank's sums (worker.cpp); tests/cpu/test_doctor_telemetry.cpp checks the wording.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/telemetry.hpp"

namespace epcomm::doctor {

// One rank's counts about one peer, summed over the operations.
struct PeerSums {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t wait_ns = 0;
  std::uint64_t waits = 0;
};
inline constexpr int kPeerSumsWords = 4;  // uint64 words of a PeerSums on the wire

// This rank's telemetry summed per peer: entry p is about rank p, for p in [0, num_ranks); rows
// about a rank outside that range are ignored.
std::vector<PeerSums> sum_by_peer(const std::vector<PeerTraffic>& traffic, int num_ranks);
// The flat wire form (num_ranks * kPeerSumsWords words) and back, for the worker's all_gather.
std::vector<std::uint64_t> to_words(const std::vector<PeerSums>& sums);
std::vector<PeerSums> from_words(const std::uint64_t* words, int num_ranks);

// by_rank[r][p]: what rank r counted about rank p (its own entry, r == p, is left out). E.g.
// "telemetry: 1.50 MiB moved between the ranks; slowest peer: rank 1 (the others waited on it
// 35.2 us in 12 waits, 80% of all waiting)", or that no rank had to wait, or that one rank has no peer.
std::string telemetry_words(const std::vector<std::vector<PeerSums>>& by_rank);

}  // namespace epcomm::doctor
