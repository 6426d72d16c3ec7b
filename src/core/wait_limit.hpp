// How long a bounded wait (core/wait.cuh) spins before it reports a timeout. Host and device: the
// host form is what the CPU test checks.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define EPCOMM_WAIT_LIMIT_HD __host__ __device__
#else
#define EPCOMM_WAIT_LIMIT_HD
#endif

namespace epcomm {

inline constexpr std::uint64_t kSelfWaitMinGraceNs = 1000000;     // 1 ms
inline constexpr std::uint64_t kSelfWaitMaxGraceNs = 1000000000;  // 1 s

// A wait on a peer runs out at the timeout. A wait on this rank's own signals runs out only when one
// of this rank's own blocks is held up, by a peer whose wait runs out at about the same moment: it
// gets a grace period past the timeout (an eighth of it, within [1 ms, 1 s]), so that the report
// names that peer rather than this rank; it reports itself only when no other wait did by then.
EPCOMM_WAIT_LIMIT_HD constexpr std::uint64_t wait_limit_ns(std::uint64_t timeout_ns, bool waits_on_itself) {
  if (!waits_on_itself) return timeout_ns;
  const std::uint64_t grace = timeout_ns / 8;
  return timeout_ns + (grace < kSelfWaitMinGraceNs   ? kSelfWaitMinGraceNs
                       : grace > kSelfWaitMaxGraceNs ? kSelfWaitMaxGraceNs
                                                     : grace);
}

}  // namespace epcomm
