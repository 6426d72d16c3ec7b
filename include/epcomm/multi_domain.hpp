// Sizing a multi-domain Buffer (docs/multi_domain.md): ranks in several NVLink domains, rows
// crossing between domains through NVSHMEM. The analogue of the reference library's config tables.
//
//   MultiDomainShape shape{.num_tokens = 4096, .hidden = 7168, .num_topk = 8, .num_experts = 256,
//                          .num_ranks = 16, .ranks_per_domain = 8};
//   BufferOptions options{.num_nvl_bytes = multi_domain_nvl_bytes_hint(shape),
//                         .num_rdma_bytes = multi_domain_rdma_bytes_hint(shape)};
//
// A Buffer with more than one domain needs num_rdma_bytes > 0 and a program linked with
// epcomm_nvshmem (-DEPCOMM_WITH_NVSHMEM=ON); docs/multi_domain.md says what each region holds.
#pragma once

#include <cstdint>

#include "epcomm/export.hpp"

namespace epcomm {

// The largest calls a multi-domain Buffer will serve. Every rank must size with the same values.
struct MultiDomainShape {
  std::int64_t num_tokens = 0;  // T: most tokens one rank dispatches per call
  std::int64_t hidden = 0;      // channels per token (a multiple of 128 with fp8)
  int num_topk = 0;             // k of topk_idx; 0 without top-k
  int num_experts = 0;          // E, a multiple of num_ranks
  int num_ranks = 0;            // R = ranks_per_domain x domains
  int ranks_per_domain = 0;     // G, 1 to 72 (BufferOptions::ranks_per_domain, or one host's ranks)
  bool fp8 = false;             // dispatch of FP8 E4M3 rows with one float32 scale per 128 channels
};

// BufferOptions::num_rdma_bytes: the symmetric region's rings for dispatch and combine at the
// default ring configuration of Config::num_sms = num_sms. Independent of the routing. Throws
// epcomm::Error (kInvalidArgument) naming the field of `shape` that is out of range.
EPCOMM_API std::int64_t multi_domain_rdma_bytes_hint(const MultiDomainShape& shape, int num_sms = 24);

// BufferOptions::num_nvl_bytes: room for `received_rows` rows arriving at one rank (dispatch and
// combine use the same bytes); -1: any routing, every token of every rank (R x T rows), which
// grows with R: size for the expected routing plus a margin when that is too much.
EPCOMM_API std::int64_t multi_domain_nvl_bytes_hint(const MultiDomainShape& shape,
                                                    std::int64_t received_rows = -1);

}  // namespace epcomm
