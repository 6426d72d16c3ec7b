// Multi-domain mode: the route's index math that senders, forwarders and receivers share, host and
// device alike (docs/multi_domain.md, "Dispatch").
//
// A token of source rank (s, i) in channel c crosses once to each destination domain d != s, into
// stream (s -> d, c) at forwarder (d, i); (s, i) is its own forwarder for d = s. The forwarder puts
// it on every rank (d, j) whose bit is set, at row
//     md_first_row(counts, s*G + i, j) + to_rank prefix of channels < c + its index in channel c,
// which is exactly where the single-domain order (source rank, then token) puts it.
#pragma once

#include <cstdint>

#include "transport/region_layout.hpp"

namespace epcomm {

// Channel c of C covers a source rank's tokens [md_channel_begin(c), md_channel_begin(c + 1)).
EPCOMM_HD inline std::int64_t md_channel_begin(std::int64_t num_tokens, int channel, int num_channels) {
  return num_tokens * channel / num_channels;
}
// The channel holding token t (0 <= t < num_tokens): the largest c with md_channel_begin(c) <= t.
EPCOMM_HD inline int md_channel_of(std::int64_t num_tokens, std::int64_t token, int num_channels) {
  return static_cast<int>(((token + 1) * num_channels + num_tokens - 1) / num_tokens - 1);
}

// counts: [R][G], tokens of source rank r reaching rank (d, j) of this domain d (every forwarder's
// MdDomainRecord together). The first output row of source rank src_rank on rank (d, j).
EPCOMM_HD inline std::int64_t md_first_row(const std::int32_t* counts, int ranks_per_domain, int src_rank, int j) {
  std::int64_t row = 0;
  for (int r = 0; r < src_rank; ++r) row += counts[r * ranks_per_domain + j];
  return row;
}

// Whether bit j of a rank mask (ceil(G/32) words) is set.
EPCOMM_HD inline bool md_mask_has(const std::uint32_t* mask, int j) {
  return (mask[j / 32] >> (j % 32) & 1u) != 0;
}

}  // namespace epcomm
