// Buffer::peer_telemetry: the device's per-peer counters (core/peer_counters.hpp) read back.
#include <vector>

#include "buffer/buffer_impl.hpp"
#include "core/cuda_check.hpp"
#include "core/telemetry.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm {

std::vector<PeerTraffic> Buffer::peer_telemetry(bool clear) {
  Impl& m = *impl_;
  if (m.telemetry.get() == nullptr) return {};
  EPCOMM_CUDA_CHECK(m.drain());
  std::vector<PeerCounters> table(static_cast<std::size_t>(kTelemetryOps) * kTelemetryPeers);
  EPCOMM_CUDA_CHECK(cudaMemcpy(table.data(), m.telemetry.get(), m.telemetry.bytes(), cudaMemcpyDeviceToHost));
  if (clear) EPCOMM_CUDA_CHECK(cudaMemset(m.telemetry.get(), 0, m.telemetry.bytes()));
  // The kernels' view indexes the table: a low-latency Buffer across domains counts every rank.
  const DomainView& v = m.ll != nullptr ? m.ll->view : m.view;
  return telemetry_rows(table.data(), kTelemetryPeers, v.num_domain_ranks, v.domain_base_rank);
}

}  // namespace epcomm
