#include "runtime/ht_dispatch_copy.hpp"

#include <algorithm>

#include "runtime/check.hpp"
#include "runtime/cuda_check.hpp"

namespace epcomm {

void queue_copy_engine_dispatch(Buffer::Impl& m, HtDispatchArgs d, const HtDispatchPlan& plan,
                                const DispatchHandle& h, CommScope& scope) {
  const int G = m.view.num_domain_ranks, me = m.view.domain_rank;
  const int K = plan.copy_chunks, C = plan.num_channels;
  EPCOMM_REQUIRE(K > 0 && h.send_prefix_host.size() == static_cast<std::size_t>(G * (K + 1)) &&
                     h.count_matrix_host.size() == static_cast<std::size_t>(G * G),
                 ErrorCategory::kInternal, "copy-engine dispatch without the host's counts");
  const cudaStream_t comm = scope.comm(), copy = m.copy.get();
  const std::int32_t* counts = h.count_matrix_host.data();
  const std::vector<ChunkCopy> copies = dispatch_chunk_copies(counts, h.send_prefix_host.data(), G, me, K);
  const auto row_bytes = static_cast<std::size_t>(d.region.row_bytes);
  const std::int64_t staged = first_staged_row(counts, G, me, G);  // every peer's rows
  const DeviceTensor staging = DeviceTensor::empty(
      m.allocator, DType::kU8, {std::max<std::int64_t>(1, staged) * d.region.row_bytes}, comm);
  while (m.copy_events.size() < static_cast<std::size_t>(K + 1)) m.copy_events.emplace_back();

  // One launch of `blocks` blocks (all senders) forwarding channels [c0, c1).
  auto launch = [&](const char* label, int blocks, int c0, int c1) {
    d.num_senders = blocks;
    d.channel_offset = c0;
    d.num_send_channels = c1 - c0;
    m.timer.begin(comm, label);
    launch_ht_dispatch(d, blocks, comm);
    m.timer.end(comm);
  };
  d.stage_x = static_cast<std::uint8_t*>(staging.data());
  d.phased = false;
  auto next = copies.begin();
  for (int k = 0; k < K; ++k) {
    const int c0 = copy_chunk_channel(k, K, C), c1 = copy_chunk_channel(k + 1, K, C);
    launch("pack", plan.num_senders, c0, c1);
    Event& packed = m.copy_events[static_cast<std::size_t>(k)];
    packed.record(comm);
    EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(copy, packed.get(), 0));
    for (; next != copies.end() && next->chunk == k; ++next) {
      char* region = RegionLayout::data(m.view.peer_base[next->dst]) + d.region.x_offset;
      EPCOMM_CUDA_CHECK(cudaMemcpyAsync(region + static_cast<std::size_t>(next->region_row) * row_bytes,
                                        d.stage_x + static_cast<std::size_t>(next->stage_row) * row_bytes,
                                        static_cast<std::size_t>(next->rows) * row_bytes,
                                        cudaMemcpyDeviceToDevice, copy));
    }
    launch_ht_dispatch_signal(m.view, c0, c1, copy);
  }
  m.timer.host_step("copies-queued");

  // This rank's own rows (every channel) while the copy engine still carries the peers', then
  // every warp receives.
  d.stage_x = nullptr;
  d.self_only = true;
  d.phased = true;
  launch("dispatch", plan.num_blocks, 0, C);
  Event& copied = m.copy_events[static_cast<std::size_t>(K)];
  copied.record(copy);
  // NOTE: before staging is released (on comm) and before the next operation reuses the regions.
  EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(comm, copied.get(), 0));
}

}  // namespace epcomm
