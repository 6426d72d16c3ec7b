// Buffer::peer_telemetry: the device's per-peer counters (core/peer_counters.hpp) read back.
#include <vector>

#include "buffer/buffer_impl.hpp"
#include "core/cuda_check.hpp"
#include "core/telemetry.hpp"

namespace epcomm {

std::vector<PeerTraffic> Buffer::peer_telemetry(bool clear) {
  Impl& m = *impl_;
  if (m.telemetry.get() == nullptr) return {};
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(m.comm.get()));
  std::vector<PeerCounters> table(static_cast<std::size_t>(kTelemetryOps) * kMaxDomainRanks);
  EPCOMM_CUDA_CHECK(cudaMemcpy(table.data(), m.telemetry.get(), m.telemetry.bytes(), cudaMemcpyDeviceToHost));
  if (clear) EPCOMM_CUDA_CHECK(cudaMemset(m.telemetry.get(), 0, m.telemetry.bytes()));
  return telemetry_rows(table.data(), kMaxDomainRanks, m.view.num_domain_ranks, m.view.domain_base_rank);
}

}  // namespace epcomm
