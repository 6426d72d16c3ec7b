// Multi-domain mode: the format of one ring slot (what one inter-domain put carries) and of the
// count records exchanged before the rows, across domains (symmetric mailboxes) and within a
// domain (the NVLink region's mailboxes, RegionLayout::mailbox). Plain data, host and device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "internode/md_limits.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

inline constexpr std::size_t kMdSectionAlignment = 16;  // every section: one 16-byte vector
inline constexpr std::size_t kMdSlotAlignment = 128;    // slot stride: whole cache lines

// Dispatch slot, one (token, destination domain) pair:
//   [ payload: row_bytes | scales: S f32 | topk_idx: k i32 (global expert ids, -1 kept) |
//     topk_weights: k f32 | src_token: i32 | rank mask: ceil(G/32) u32 (bit j: rank (d, j) needs it) ]
// Combine slot, one (token, domain) partial sum going back to the token's owner:
//   [ topk_weights: k f32 | partial: hidden f32 ]; a partial that one rank of the domain alone
//   contributed is exact in BF16 and travels as hidden BF16 values (put_bytes(true)): the owner
//   knows which from the routing, so nothing in the slot says it.
struct MdSlot {
  std::int64_t row_bytes = 0;  // dispatch payload (hidden*2 BF16, hidden FP8); combine: hidden*4
  int num_scales = 0, num_topk = 0, mask_words = 0;
  std::size_t payload_offset = 0, scales_offset = 0, topk_offset = 0, weights_offset = 0;
  std::size_t src_token_offset = 0, mask_offset = 0, put_bytes_full = 0, put_bytes_bf16 = 0, stride = 0;

  EPCOMM_HD static MdSlot dispatch(std::int64_t row_bytes, int num_scales, int num_topk,
                                   int ranks_per_domain) {
    MdSlot s;
    s.row_bytes = row_bytes;
    s.num_scales = num_scales;
    s.num_topk = num_topk;
    s.mask_words = (ranks_per_domain + 31) / 32;
    const auto k = static_cast<std::size_t>(num_topk);
    s.payload_offset = 0;
    s.scales_offset = align_up(static_cast<std::size_t>(row_bytes), kMdSectionAlignment);
    s.topk_offset =
        align_up(s.scales_offset + 4u * static_cast<std::size_t>(num_scales), kMdSectionAlignment);
    s.weights_offset = align_up(s.topk_offset + 4u * k, kMdSectionAlignment);
    s.src_token_offset = align_up(s.weights_offset + 4u * k, kMdSectionAlignment);
    s.mask_offset = s.src_token_offset + 4u;
    s.put_bytes_full =
        align_up(s.mask_offset + 4u * static_cast<std::size_t>(s.mask_words), kMdSectionAlignment);
    s.put_bytes_bf16 = s.put_bytes_full;
    s.stride = align_up(s.put_bytes_full, kMdSlotAlignment);
    return s;
  }
  EPCOMM_HD static MdSlot combine(std::int64_t hidden, int num_topk) {
    MdSlot s;
    s.row_bytes = hidden * 4;
    s.num_topk = num_topk;
    s.weights_offset = 0;
    s.payload_offset = align_up(4u * static_cast<std::size_t>(num_topk), kMdSectionAlignment);
    s.scales_offset = s.topk_offset = s.src_token_offset = s.mask_offset = s.payload_offset;
    s.put_bytes_full =
        align_up(s.payload_offset + static_cast<std::size_t>(hidden) * 4u, kMdSectionAlignment);
    s.put_bytes_bf16 =
        align_up(s.payload_offset + static_cast<std::size_t>(hidden) * 2u, kMdSectionAlignment);
    s.stride = align_up(s.put_bytes_full, kMdSlotAlignment);
    return s;
  }
  EPCOMM_HD std::size_t put_bytes(bool bf16_partial) const {
    return bf16_partial ? put_bytes_bf16 : put_bytes_full;
  }
};

// Source (s, i) -> forwarder (d, i), once per dispatch, before any row: everything (d, i) needs
// to place the stream's rows at their final positions in its domain. int32 entries:
//   [ tokens [C]: tokens of channel c reaching domain d (the stream's length) |
//     to_rank [C][G]: tokens of channel c reaching rank (d, j) |
//     per_expert [G][nle]: selections of local expert e of rank (d, j) ]
struct MdCountRecord {
  int num_channels = 0, ranks_per_domain = 0, num_local_experts = 0;

  EPCOMM_HD int tokens(int channel) const { return channel; }
  EPCOMM_HD int to_rank(int channel, int j) const { return num_channels + channel * ranks_per_domain + j; }
  EPCOMM_HD int per_expert(int j, int expert) const {
    return num_channels * (1 + ranks_per_domain) + j * num_local_experts + expert;
  }
  EPCOMM_HD int ints() const {
    return num_channels * (1 + ranks_per_domain) + ranks_per_domain * num_local_experts;
  }
  // What every mailbox holds room for (the header is fixed, so at the limits).
  EPCOMM_HD static constexpr int capacity_ints(int ranks_per_domain) {
    return kMdMaxChannels * (1 + ranks_per_domain) + ranks_per_domain * kMdMaxLocalExperts;
  }
};

// Forwarder (d, i) -> every rank (d, j) of its domain, in j's NVLink region mailbox of source i:
//   [ counts [D][G]: tokens of source rank (s, i) reaching rank (d, j') | per_expert [nle]:
//     selections of j's local experts by the tokens of every (s, i) ]
// With every forwarder's record, each rank knows the whole [D][G][G] count matrix of its domain.
struct MdDomainRecord {
  int num_domains = 0, ranks_per_domain = 0, num_local_experts = 0;

  EPCOMM_HD int count(int src_domain, int j) const { return src_domain * ranks_per_domain + j; }
  EPCOMM_HD int per_expert(int expert) const { return num_domains * ranks_per_domain + expert; }
  EPCOMM_HD int ints() const { return num_domains * ranks_per_domain + num_local_experts; }
  // Where the record starts in the mailbox: after the flag and the writer's CallSignature (at 32).
  static constexpr std::size_t kOffsetBytes = 64;
  static constexpr int kCapacityInts =
      static_cast<int>((RegionLayout::kMailboxBytes - kOffsetBytes) / sizeof(std::int32_t));
};

static_assert(std::is_trivially_copyable_v<MdSlot> && std::is_trivially_copyable_v<MdCountRecord> &&
                  std::is_trivially_copyable_v<MdDomainRecord>,
              "kernels receive these by value");

}  // namespace epcomm
