// One rank's part in one fault case (epcomm-faults --rank-case): rank 0 survives and records what it
// observed, rank 1 commits the fault. Needs a GPU; run by the driver through run_ranks.
#pragma once

#include <cstdint>
#include <string>

#include "faults/fault_cases.hpp"

namespace epcomm::faults {

struct RankContext {
  int rank = 0;
  int world = 2;
  int local_rank = 0;
  std::int64_t timeout_ms = 3000;
  int ranks_per_domain = 0;  // > 0: the Buffers split the ranks into NVLink domains of this many
  std::string dir;  // the case's folder: observed.txt (rank 0), fault_ns.txt and peer_error.txt (rank 1)
};

inline constexpr const char* kObservationFile = "observed.txt";
inline constexpr const char* kFaultTimeFile = "fault_ns.txt";
inline constexpr const char* kPeerErrorFile = "peer_error.txt";  // rank 1's own error, if its call threw

// Runs this rank's side of `c`; returns the process's exit code (0 once the survivor recorded its
// observation, whatever it was). The faulty rank may never return (SIGKILL, a stall's _exit).
int run_case_rank(const Case& c, const RankContext& ctx);

// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine.
std::int64_t monotonic_ns();

}  // namespace epcomm::faults
