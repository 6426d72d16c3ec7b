// Where things sit in each rank's NVLink communication region: the single source of truth used by
// the host to size the allocation and by kernels to index it. Every rank's region has the same
// layout, so a rank finds a field in a peer's region at the same offset as in its own.
//
//   [ barrier slots | call records [2 parities][G sources] | mailboxes [2 parities][G sources]
//     | progress [G sources][kMaxChannels] | data ]
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/domain_view.hpp"

namespace epcomm {

// Host- and device-callable.
#if defined(__CUDACC__)
#define EPCOMM_HD __host__ __device__
#else
#define EPCOMM_HD
#endif

inline constexpr std::size_t kRegionAlignment = 4096;  // data regions start on a page-ish boundary
// Most thread blocks one operation may use (>= the multiprocessors of any supported GPU).
inline constexpr int kMaxBlocks = 160;
// Warps per block of the high-throughput kernels, and so the most warp-sized channels (each a
// contiguous run of tokens or rows with its own progress counter) one operation may have.
inline constexpr int kHtWarpsPerBlock = 16;
inline constexpr int kMaxChannels = kMaxBlocks * kHtWarpsPerBlock;

EPCOMM_HD constexpr std::size_t align_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

struct RegionLayout {
  // slot[p]: the newest barrier epoch domain rank p has signalled to this rank.
  static constexpr std::size_t kBarrierSlots = 0;
  static constexpr std::size_t kBarrierBytes = sizeof(std::uint64_t) * kMaxDomainRanks;
  // Per-source records of the call a barrier opens (a CallSignature, then the barrier's epoch),
  // written by the source before its signal: by the parity of the epoch, since a peer can be one
  // barrier ahead but not two (buffer/barrier.cuh).
  static constexpr std::size_t kCallRecordBytes = 64;
  static constexpr std::size_t kCallRecords = align_up(kBarrierSlots + kBarrierBytes, 256);
  static constexpr std::size_t kCallRecordsBytes = kCallRecordBytes * 2 * kMaxDomainRanks;
  // Per-source mailboxes of the count exchange (notify), two parities so a fast rank can write
  // the next exchange while a slow one still reads this one: 32 KiB per (parity, source).
  static constexpr std::size_t kMailboxBytes = 32 * 1024;
  static constexpr std::size_t kMailboxes = align_up(kCallRecords + kCallRecordsBytes, 256);
  static constexpr std::size_t kMailboxesBytes = kMailboxBytes * 2 * kMaxDomainRanks;
  // progress[s][c]: rows channel c of domain rank s has finished writing into this region for the
  // current operation. Zeroed by the owner before the operation's opening barrier.
  static constexpr std::size_t kProgress = align_up(kMailboxes + kMailboxesBytes, 256);
  static constexpr std::size_t kProgressBytes = sizeof(std::uint64_t) * kMaxDomainRanks * kMaxChannels;
  // Everything after this is workspace that one operation at a time carves up.
  static constexpr std::size_t kData = align_up(kProgress + kProgressBytes, kRegionAlignment);

  EPCOMM_HD static constexpr std::size_t region_bytes(std::size_t data_bytes) {
    return kData + align_up(data_bytes, kRegionAlignment);
  }
  EPCOMM_HD static std::uint64_t* barrier_slots(void* region) {
    return reinterpret_cast<std::uint64_t*>(static_cast<char*>(region) + kBarrierSlots);
  }
  EPCOMM_HD static char* call_record(void* region, int parity, int src_domain_rank) {
    return static_cast<char*>(region) + kCallRecords +
           kCallRecordBytes * (static_cast<std::size_t>(parity) * kMaxDomainRanks +
                               static_cast<std::size_t>(src_domain_rank));
  }
  EPCOMM_HD static char* mailbox(void* region, int parity, int src_domain_rank) {
    return static_cast<char*>(region) + kMailboxes +
           kMailboxBytes * (static_cast<std::size_t>(parity) * kMaxDomainRanks +
                            static_cast<std::size_t>(src_domain_rank));
  }
  EPCOMM_HD static std::uint64_t* progress(void* region, int src_domain_rank, int channel) {
    return reinterpret_cast<std::uint64_t*>(static_cast<char*>(region) + kProgress) +
           static_cast<std::size_t>(src_domain_rank) * kMaxChannels + channel;
  }
  EPCOMM_HD static char* data(void* region) { return static_cast<char*>(region) + kData; }
};

}  // namespace epcomm
