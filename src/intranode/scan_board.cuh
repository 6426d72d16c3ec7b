// The board of the fused launch's send scan (fused_scan.cuh): the words each block publishes its
// rows to each rank in, read by the blocks after it and, for the totals, by notify's block
// (copy_scan, ht_notify_block.cuh). Definitions in an unnamed namespace, one private copy per
// including translation unit.
#pragma once

#include <cstdint>

#include "intranode/ht_layout_notify.hpp"

namespace epcomm {

namespace {

// One ticket's rows to one destination in one 64-bit word of the scratch ([ticket][kFusedMaxRanks]):
// the call's tag above (from notify's epoch; never 0, the scratch's first value), below it a bit
// telling an inclusive sum from the block's own rows, then the count. A word of another call has
// another tag (they repeat after 2^31 calls).
struct BlockRows {
  static constexpr std::uint64_t kInclusive = 1ull << 31;
  static __device__ std::uint32_t tag_of(std::uint64_t epoch) {
    return static_cast<std::uint32_t>(epoch & 0x7fffffffu) | 0x80000000u;
  }
  static __device__ std::uint64_t word(std::uint32_t tag, bool inclusive, std::int32_t rows) {
    return std::uint64_t{tag} << 32 | (inclusive ? kInclusive : 0) | static_cast<std::uint32_t>(rows);
  }
  static __device__ bool tagged(std::uint64_t w, std::uint32_t tag) {
    return static_cast<std::uint32_t>(w >> 32) == tag;
  }
  static __device__ bool inclusive(std::uint64_t w) { return (w & kInclusive) != 0; }
  static __device__ std::int32_t rows(std::uint64_t w) { return static_cast<std::int32_t>(w & 0x7fffffffu); }
};

// Where the blocks of one call publish (FusedScratch::block_rows) and under which tag.
struct ScanBoard {
  std::uint64_t* rows;  // [ticket][kFusedMaxRanks]
  std::uint32_t tag;
  __device__ std::uint64_t* at(int ticket, int d) const {
    return rows + static_cast<std::int64_t>(ticket) * kFusedMaxRanks + d;
  }
};

}  // namespace

}  // namespace epcomm
