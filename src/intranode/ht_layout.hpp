// Where the high-throughput kernels put rows inside a rank's data region (RegionLayout::data).
// Every rank computes the same layout from the same operation parameters and the same region
// size, so a sender finds row n of a receiver's region without asking it.
//
// Dispatch:  [ x rows: cap x row_bytes | scales: cap x S f32 | topk: cap x k idx | weights: cap x k
//              f32 | src_idx: cap x i32 ]
// Combine:   [ x rows: cap x hidden*2 | weights: cap x k f32 ]
#pragma once

#include <cstddef>
#include <cstdint>

#include "transport/region_layout.hpp"

namespace epcomm {

inline constexpr std::size_t kSectionAlignment = 128;

struct HtDispatchLayout {
  std::int64_t cap_rows = 0;   // rows the region holds
  std::int64_t row_bytes = 0;  // payload bytes per row
  int num_scales = 0;          // FP8 scales per row (0 for BF16)
  int num_topk = 0;            // 0: no top-k sections
  int idx_bytes = 8;           // 8 (int64) or 4 (int32) per top-k index
  std::size_t x_offset = 0, scales_offset = 0, topk_offset = 0, weights_offset = 0, src_idx_offset = 0;
  std::size_t total_bytes = 0;

  EPCOMM_HD std::size_t bytes_per_row() const {
    return static_cast<std::size_t>(row_bytes) + 4u * static_cast<std::size_t>(num_scales) +
           static_cast<std::size_t>(num_topk) * (static_cast<std::size_t>(idx_bytes) + 4u) + 4u;
  }
  // What the alignment of the sections after the first may cost: one kSectionAlignment each.
  static constexpr std::size_t kSlack = 5 * kSectionAlignment;
  // Lays out as many rows as fit in `data_bytes`.
  EPCOMM_HD static HtDispatchLayout make(std::size_t data_bytes, std::int64_t row_bytes, int num_scales,
                                         int num_topk, int idx_bytes) {
    HtDispatchLayout l;
    l.row_bytes = row_bytes;
    l.num_scales = num_scales;
    l.num_topk = num_topk;
    l.idx_bytes = idx_bytes;
    l.cap_rows = data_bytes > kSlack ? static_cast<std::int64_t>((data_bytes - kSlack) / l.bytes_per_row()) : 0;
    const auto cap = static_cast<std::size_t>(l.cap_rows);
    l.x_offset = 0;
    l.scales_offset = align_up(l.x_offset + cap * static_cast<std::size_t>(row_bytes), kSectionAlignment);
    l.topk_offset =
        align_up(l.scales_offset + cap * 4u * static_cast<std::size_t>(num_scales), kSectionAlignment);
    l.weights_offset =
        align_up(l.topk_offset + cap * static_cast<std::size_t>(num_topk * idx_bytes), kSectionAlignment);
    l.src_idx_offset =
        align_up(l.weights_offset + cap * 4u * static_cast<std::size_t>(num_topk), kSectionAlignment);
    l.total_bytes = l.src_idx_offset + cap * 4u;
    return l;
  }
  // The inverse of make: the fewest data_bytes whose layout holds `rows` rows.
  static std::size_t bytes_for_rows(std::int64_t rows, std::int64_t row_bytes, int num_scales, int num_topk,
                                    int idx_bytes) {
    const HtDispatchLayout l = make(0, row_bytes, num_scales, num_topk, idx_bytes);
    return kSlack + static_cast<std::size_t>(rows) * l.bytes_per_row();
  }
};

// Combine's shares: the rows one rank moves for one peer split among S warps, share b being
// [n*b/S, n*(b+1)/S); each share has its own progress counter.
// Both divide in 32 bits when the operands fit, as they do for any real region (n * S < 2^32):
// a 64-bit division is a ~100-instruction call on the GPU, and combine's reducers pay two per
// token and peer (bench/NOTES.md 11.9).
EPCOMM_HD inline std::int64_t share_begin(std::int64_t n, int b, int S) {
  const std::int64_t num = n * b;
  if (num <= 0xffffffffLL) return static_cast<std::uint32_t>(num) / static_cast<std::uint32_t>(S);
  return num / S;
}
// The share holding row j (0 <= j < n): the largest b with share_begin(b) <= j.
EPCOMM_HD inline int share_of(std::int64_t n, std::int64_t j, int S) {
  const std::int64_t num = (j + 1) * S + n - 1;
  if (num <= 0xffffffffLL) return static_cast<int>(static_cast<std::uint32_t>(num) / static_cast<std::uint32_t>(n)) - 1;
  return static_cast<int>(num / n - 1);
}

// Dispatch rows land source-major: source s's rows to rank d start after those of sources < s.
EPCOMM_HD inline std::int64_t first_row_on(const std::int32_t* count_matrix, int G, int src, int dst) {
  std::int64_t row = 0;
  for (int s = 0; s < src; ++s) row += count_matrix[s * G + dst];
  return row;
}

// Combine returns rows the other way: in `src`'s region (push), the rows coming back from rank
// `dst` start after those `src` sent to ranks < dst.
EPCOMM_HD inline std::int64_t first_row_back(const std::int32_t* count_matrix, int G, int src, int dst) {
  std::int64_t row = 0;
  for (int d = 0; d < dst; ++d) row += count_matrix[src * G + d];
  return row;
}

// Copy-engine dispatch (EPCOMM_HT_DISPATCH_CE): domain rank `me` packs its payload rows to each
// peer into local staging, the peers in rank order, each peer's rows contiguous in token order;
// the first staged row of peer `dst`.
EPCOMM_HD inline std::int64_t first_staged_row(const std::int32_t* count_matrix, int G, int me, int dst) {
  std::int64_t row = 0;
  for (int d = 0; d < dst; ++d)
    if (d != me) row += count_matrix[me * G + d];
  return row;
}
// Its K chunks are consecutive runs of C / K channels (C a multiple of K): chunk k opens here.
EPCOMM_HD inline int copy_chunk_channel(int k, int K, int C) {
  return C / K * k;
}

// Copy-engine dispatch, straight copies: a rank that gets all but at most kMaxStraightHoles of the
// tokens gets its payload copied by the copy engine straight from x, one copy per run of
// consecutive tokens, instead of packed first. Each copy costs ~2.7 us of copy engine and ~5 us of
// host (results/...-s10-1gpu-copy-call-probe-*), so only few extra copies pay for the pack they
// save. The pack kernel and the host decide alike, from this rank's rows to that rank.
inline constexpr std::int64_t kMaxStraightHoles = 4;
EPCOMM_HD inline bool straight_copies(std::int64_t rows, std::int64_t num_tokens) {
  return rows > 0 && num_tokens - rows <= kMaxStraightHoles;
}

// What notify leaves in mapped host memory for the host, in 8-byte words (slots): [received total]
// [per-expert counts: nle][count matrix: G x G][copy-engine dispatch only: this rank's rows to each
// rank before each chunk boundary: G x (K + 1)]. Each word holds its count (low half) and its call's
// tag (high half, host_count_tag), stored by one 8-byte store: the host takes a word once it carries
// this call's tag, so no flag follows the counts and the device waits for no system-scope fence
// (~0.9 us at the end of notify, NOTES 11.72).
struct HtHostCounts {
  int num_local_experts = 0, num_domain_ranks = 0;
  static constexpr int kTotal = 0;
  EPCOMM_HD int per_expert() const { return 1; }
  EPCOMM_HD int count_matrix() const { return per_expert() + num_local_experts; }
  EPCOMM_HD int send_prefix() const { return count_matrix() + num_domain_ranks * num_domain_ranks; }
  EPCOMM_HD int ints(int copy_chunks) const {
    return send_prefix() + (copy_chunks > 0 ? num_domain_ranks * (copy_chunks + 1) : 0);
  }
};

// The tag of call `seq`'s host counts: its low 31 bits with bit 31 set, so never 0 (the mapped memory
// starts zeroed) and not repeated within 2^31 calls.
EPCOMM_HD constexpr std::uint32_t host_count_tag(std::uint64_t seq) {
  return static_cast<std::uint32_t>(seq) | 0x80000000u;
}
EPCOMM_HD constexpr std::uint64_t tag_host_count(std::int32_t n, std::uint64_t seq) {
  return (std::uint64_t{host_count_tag(seq)} << 32) | static_cast<std::uint32_t>(n);
}
EPCOMM_HD constexpr std::int32_t host_count_value(std::uint64_t word) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(word));
}
EPCOMM_HD constexpr bool host_count_is(std::uint64_t word, std::uint64_t seq) {
  return static_cast<std::uint32_t>(word >> 32) == host_count_tag(seq);
}

// The tokens combine's reducer warp `warp` of `num_warps` sums: its part of each of `segments`
// equal slices of [0, num_tokens), slice by slice (one slice: one contiguous range per warp).
struct WarpTokens {
  std::int64_t num_tokens = 0, warp = 0, num_warps = 1;
  int segments = 1;
  EPCOMM_HD std::int64_t begin(int q) const { return part(q, warp); }
  EPCOMM_HD std::int64_t end(int q) const { return part(q, warp + 1); }

 private:
  EPCOMM_HD std::int64_t part(int q, std::int64_t w) const {
    const std::int64_t b = num_tokens * q / segments, e = num_tokens * (q + 1) / segments;
    return b + (e - b) * w / num_warps;
  }
};

struct HtCombineLayout {
  std::int64_t cap_rows = 0;
  std::int64_t row_bytes = 0;  // hidden * 2 (BF16)
  int num_topk = 0;            // weight rows carried back (0: none)
  std::size_t x_offset = 0, weights_offset = 0, total_bytes = 0;

  static constexpr std::size_t kSlack = 2 * kSectionAlignment;  // the weights section's alignment, and spare

  EPCOMM_HD static std::size_t bytes_per_row(std::int64_t row_bytes, int num_topk) {
    return static_cast<std::size_t>(row_bytes) + 4u * static_cast<std::size_t>(num_topk);
  }
  EPCOMM_HD static HtCombineLayout make(std::size_t data_bytes, std::int64_t row_bytes, int num_topk) {
    HtCombineLayout l;
    l.row_bytes = row_bytes;
    l.num_topk = num_topk;
    const std::size_t per_row = bytes_per_row(row_bytes, num_topk);
    l.cap_rows = data_bytes > kSlack ? static_cast<std::int64_t>((data_bytes - kSlack) / per_row) : 0;
    l.weights_offset = align_up(static_cast<std::size_t>(l.cap_rows) * static_cast<std::size_t>(row_bytes),
                                kSectionAlignment);
    l.total_bytes =
        l.weights_offset + static_cast<std::size_t>(l.cap_rows) * 4u * static_cast<std::size_t>(num_topk);
    return l;
  }
  // The inverse of make: the fewest data_bytes whose layout holds `rows` rows.
  static std::size_t bytes_for_rows(std::int64_t rows, std::int64_t row_bytes, int num_topk) {
    return kSlack + static_cast<std::size_t>(rows) * bytes_per_row(row_bytes, num_topk);
  }
};

}  // namespace epcomm
