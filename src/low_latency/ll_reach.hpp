// How a low-latency launch numbers the ranks it reaches, as plain functions that host and device
// share (so the CPU tests check the same arithmetic the kernels run): whether a view rank is in a
// range reached by stores, which peer_base slot holds its workspace on the hybrid path, and its
// NVSHMEM PE. View ranks are domain indices of DomainView (on a Buffer with several domains, the
// world view of ll_world_view: view rank = global rank).
#pragma once

#include "core/domain_view.hpp"
#include "transport/region_layout.hpp"  // EPCOMM_HD

namespace epcomm {

// View rank d is in [first, first + count). One unsigned comparison: d below `first` wraps to a
// large value.
EPCOMM_HD inline bool ll_rank_in(int first, int count, int d) {
  return static_cast<unsigned>(d - first) < static_cast<unsigned>(count);
}

// The ranks of this rank's NVLink domain on the hybrid path (DomainView::nvl_first, nvl_ranks).
EPCOMM_HD inline bool ll_in_nvl_domain(const DomainView& v, int d) {
  return ll_rank_in(v.nvl_first, v.nvl_ranks, d);
}

// The DomainView::peer_base slot that holds view rank d's workspace on the hybrid path; d must be
// in this rank's NVLink domain (ll_in_nvl_domain).
EPCOMM_HD inline int ll_nvl_slot(const DomainView& v, int d) {
  return d - v.nvl_first;
}

// NVSHMEM's PE of view rank d: NVSHMEM numbers PEs by global rank (NvshmemTransport checks it).
EPCOMM_HD inline int ll_pe(const DomainView& v, int d) {
  return v.domain_base_rank + d;
}

}  // namespace epcomm
