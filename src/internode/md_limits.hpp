// Limits of the multi-domain mode (docs/multi_domain.md), host and device alike. Each names what
// it bounds and why; the host refuses a larger value with an epcomm::Error naming it.
#pragma once

#include <cstdint>

#include "core/domain_view.hpp"

namespace epcomm {

// D: domains of one group. 256 x 8-GPU domains is EP2048, the largest size designed and tested.
inline constexpr int kMdMaxDomains = 256;
// C: channels of one operation. The fixed header keeps counters for this many per peer domain.
inline constexpr int kMdMaxChannels = 64;
// nle = E / R: local experts whose counts travel in a count record (its capacity is fixed).
inline constexpr int kMdMaxLocalExperts = 256;
// N: slots of one receive ring (a ring holding more than a whole operation's stream is waste).
inline constexpr int kMdMaxRingSlots = 1 << 16;
// A ring needs room for two credit batches of two slots each to keep a stream moving.
inline constexpr int kMdMinRingSlots = 4;

// A slot flag: bit 63 the operation, bits 48-61 the stream (peer x kMdMaxChannels + channel),
// bits 0-47 the slot's cumulative index + 1 (2.8e14 slots per stream before it wraps).
inline constexpr int kMdSeqBits = 48;
inline constexpr std::uint64_t kMdSeqMask = (std::uint64_t{1} << kMdSeqBits) - 1;
static_assert((kMdMaxDomains - 1) * kMdMaxChannels <= (1 << 14), "a stream id must fit bits 48-61");
static_assert(kMaxDomainRanks == 72, "G's bound appears in messages and the README as 72");

}  // namespace epcomm
