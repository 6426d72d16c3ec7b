// Multi-domain mode: how big the two regions must be, the default ring configuration (the
// analogue of the reference library's config tables), and the refusals of undersized regions.
//
//   symmetric (NVSHMEM) region, num_rdma_bytes: MdSymmetricLayout; independent of T and of the
//     routing (rings with credits), it grows with D x C x N x slot.
//   NVLink region, num_nvl_bytes (RegionLayout's data area): each rank's received rows whole, as in
//     one domain (HtDispatchLayout, HtCombineLayout over the same bytes); the forwarders write every
//     row at its final place, and combine's forwarders read them back from there.
#pragma once

#include <cstdint>

#include "internode/md_layout.hpp"

namespace epcomm {

// The shape of an operation (and of the model, md_model.hpp).
struct MdShape {
  std::int64_t num_tokens = 0;  // T: tokens per rank (at most)
  std::int64_t hidden = 0;
  int num_topk = 0;             // k; 0: no top-k sections
  int num_experts = 0;          // E
  int ranks_per_domain = 0;     // G
  int num_domains = 0;          // D
  bool fp8 = false;             // dispatch payload E4M3 + hidden/128 float32 scales, else BF16

  int num_ranks() const { return ranks_per_domain * num_domains; }
};

struct MdRingConfig {
  int num_channels = 0;   // C
  int ring_slots = 0;     // N: slots of each (peer domain, channel) receive ring
  int staging_slots = 0;  // S: send-staging slots per channel
};

inline constexpr int kMdDefaultStagingSlots = 32;
inline constexpr int kMdDefaultRingSlots = 128;  // per ring, when the budget allows
// Receive rings of one operation get at most this many bytes by default (they grow with D x C).
inline constexpr std::int64_t kMdDefaultRingBudget = std::int64_t{1} << 30;

// The slot formats of a shape (what md_layout.hpp lays out).
MdSlot md_dispatch_slot(const MdShape& shape);
MdSlot md_combine_slot(const MdShape& shape);

// The default configuration for an SM budget (num_sms >= 2): C = num_sms / 2 (at most
// kMdMaxChannels); N the smallest of kMdDefaultRingSlots, ceil(T / C) (a ring holding a whole
// channel never waits for credits) and what ring_budget_bytes allows for the larger slot, but at
// least kMdMinRingSlots (0 with one domain: no rings); S = kMdDefaultStagingSlots.
MdRingConfig md_ring_config(const MdShape& shape, int num_sms, std::int64_t ring_budget_bytes = kMdDefaultRingBudget);

// num_rdma_bytes for a configuration: the larger of the dispatch and combine layouts.
std::int64_t md_rdma_bytes_hint(const MdShape& shape, const MdRingConfig& config);
// The ring slots num_rdma_bytes gives each op at C channels and S staging slots (the layout
// every rank computes). Throws kInvalidArgument naming num_rdma_bytes, with the bytes needed for
// kMdMinRingSlots, when fewer fit.
MdRingConfig md_fit_rdma(std::int64_t num_rdma_bytes, const MdShape& shape, int num_channels, int staging_slots,
                         MdOp op);

// Rows any routing can bring to one rank: every token of every rank (R x T).
std::int64_t md_worst_recv_rows(const MdShape& shape);
// num_nvl_bytes for `rows` received rows (dispatch and combine over the same bytes; int64 top-k).
std::int64_t md_nvl_bytes_hint(const MdShape& shape, std::int64_t rows);
// Throws kInvalidArgument naming num_nvl_bytes, with the bytes needed, when `rows` do not fit.
void check_md_nvl_bytes(std::int64_t num_nvl_bytes, const MdShape& shape, std::int64_t rows);

}  // namespace epcomm
