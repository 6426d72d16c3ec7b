// How many bytes of communication memory a high-throughput Buffer needs, for callers that know
// their largest batch. (A low-latency Buffer's size: ll_region_bytes_hint in low_latency.hpp.)
//
//   BufferOptions options{.num_nvl_bytes = ht_nvl_bytes_hint(4096, 7168, world)};
#pragma once

#include <cstdint>

#include "epcomm/export.hpp"

namespace epcomm {

// Most columns of topk_idx (top-k) a high-throughput dispatch accepts.
inline constexpr int kHtMaxTopk = 32;

// The num_nvl_bytes (BufferOptions) that a single-domain high-throughput Buffer of `num_ranks`
// ranks needs so that no dispatch or combine runs out of room when every rank passes at most
// `max_tokens_per_rank` tokens of `hidden` values, whatever the routing: BF16 or FP8 rows (with
// their scales), top-k of at most `max_topk` columns of int64 or int32 (0: no top-k), zero-copy
// outputs, and worst-case mode with num_worst_tokens up to num_ranks x max_tokens_per_rank. The
// worst case is every rank's every token sent to one rank: num_ranks x max_tokens_per_rank rows,
// each with its top-k, in that rank's region (tests/cpu/test_size_hints.cpp checks both dispatch
// and combine layouts hold them). A multiple of 4096. Every rank must pass the same value.
// Throws epcomm::Error (kInvalidArgument) naming an argument out of range: max_tokens_per_rank in
// [1, 2^31 - 1], hidden in [1, 2^17] with BF16 rows a multiple of 16 bytes, num_ranks in [1, 72]
// (one NVLink domain), max_topk in [0, kHtMaxTopk].
EPCOMM_API std::int64_t ht_nvl_bytes_hint(std::int64_t max_tokens_per_rank, std::int64_t hidden, int num_ranks,
                                          int max_topk = kHtMaxTopk);

}  // namespace epcomm
