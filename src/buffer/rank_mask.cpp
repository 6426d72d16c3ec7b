// Rank masking's host side: the device mask every kernel reads (DomainView::masked), its host
// mirror, and the collective that clears it.
#include "buffer/rank_mask.hpp"

#include <algorithm>
#include <cstring>

#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/log.hpp"
#include "low_latency/ll_state.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

namespace {

// Waits for this rank's queued work on every stream the Buffer uses; false (logged) on a CUDA error.
bool drain_streams(Buffer::Impl& m) noexcept {
  const cudaError_t status = m.drain();
  if (status == cudaSuccess) return true;
  EPCOMM_LOG_WARN("rank mask: waiting for the Buffer's kernels: ", cudaGetErrorString(status));
  return false;
}

void check_rank(const Buffer::Impl& m, int rank) {
  EPCOMM_CHECK_ARG(rank >= 0 && rank < m.num_ranks(), "rank: expected 0 to ", m.num_ranks() - 1, ", got ",
                   rank);
  EPCOMM_CHECK_ARG(rank != m.rank(), "rank: a rank cannot mask itself (rank ", rank, ")");
}

}  // namespace

void Buffer::Impl::set_masked(int rank) {
  check_rank(*this, rank);
  EPCOMM_REQUIRE(md == nullptr, ErrorCategory::kUnsupported, "rank: a multi-domain Buffer (",
                 domains.num_domains, " NVLink domains) cannot mask ranks yet (rank ", rank,
                 "): its kernels between domains do not read the mask");
  if (masked_host[static_cast<std::size_t>(rank)] != 0) return;
  // NOTE: ordered on the communication stream: a kernel queued before sees the old mask, every
  // later one (and every later graph replay on it) the new. Kernels that ran on callers' streams
  // (direct mode) are waited for first, and the write is complete before any later launch.
  if (direct_launches) EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  EPCOMM_CUDA_CHECK(cudaMemsetAsync(rank_mask.as<std::uint8_t>() + rank, 1, 1, comm.get()));
  if (direct_launches) EPCOMM_CUDA_CHECK(cudaStreamSynchronize(comm.get()));
  masked_host[static_cast<std::size_t>(rank)] = 1;
  ++mask_changes;
}

void mask_after_timeout(Buffer::Impl& m, const DeviceStatus& timeout) noexcept {
  const int peer = timeout.peer;
  if (peer < 0 || peer >= m.num_ranks() || peer == m.rank()) return;
  // The kernels that timed out end within their own timeouts; only then may the report go (a late
  // block would otherwise report into a cleared record).
  if (!drain_streams(m)) return;
  try {
    m.set_masked(peer);
  } catch (const std::exception& e) {
    EPCOMM_LOG_WARN("mask_on_timeout: could not mask rank ", peer, ": ", e.what());
    return;
  }
  std::memset(m.status_ptr(), 0, sizeof(DeviceStatus));
  EPCOMM_LOG_WARN("mask_on_timeout: rank ", peer, " masked after a timeout waiting for it");
}

void Buffer::mask_rank(int rank) {
  impl_->set_masked(rank);
}

std::vector<bool> Buffer::masked_ranks() const {
  return {impl_->masked_host.begin(), impl_->masked_host.end()};
}

void Buffer::clear_rank_mask() {
  Impl& m = *impl_;
  EPCOMM_REQUIRE(drain_streams(m), ErrorCategory::kCuda, "clear_rank_mask: this rank's work did not finish");
  // Every rank has stopped writing into its peers before any rank zeroes what peers write into it.
  m.bootstrap->barrier();
  // The barrier slots, the count exchange's mailboxes and the progress counters, and the counters
  // that number barriers and exchanges: a rank that missed calls had them out of step.
  EPCOMM_CUDA_CHECK(cudaMemset(m.region.get(), 0, RegionLayout::kData));
  EPCOMM_CUDA_CHECK(cudaMemset(m.counters.get(), 0, m.counters.bytes()));
  if (m.ll) reset_ll_sequence(*m.ll);
  EPCOMM_CUDA_CHECK(cudaMemset(m.rank_mask.get(), 0, m.rank_mask.bytes()));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  std::fill(m.masked_host.begin(), m.masked_host.end(), 0);
  ++m.mask_changes;
  std::memset(m.status_ptr(), 0, sizeof(DeviceStatus));
  m.bootstrap->barrier();  // every rank is reset before any rank's next kernel signals a peer
}

}  // namespace epcomm
