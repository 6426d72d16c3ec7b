// Bounds of low-latency mode (epcomm/low_latency.hpp). Plain constants, usable by host and device
// code alike.
#pragma once

#include <cstdint>

namespace epcomm {

inline constexpr int kLlMaxTopk = 16;                         // top-k bound of low-latency mode
inline constexpr std::int64_t kLlMaxTokensPerRank = 1 << 16;  // tokens per rank (T) bound
inline constexpr std::int64_t kLlMaxHidden = 8192;            // channels per token
inline constexpr int kLlHiddenMultiple = 128;                 // one FP8 scale per 128 channels
// Ranks of a low-latency Buffer (R): within one NVLink domain at most 72 (an NVL72 rack); across
// domains (NVSHMEM between them) up to this bound, e.g. 2 domains of 64 or 16 of 8.
inline constexpr int kLlMaxRanks = 128;

}  // namespace epcomm
