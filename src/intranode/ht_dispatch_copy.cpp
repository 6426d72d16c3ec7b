#include "intranode/ht_dispatch_copy.hpp"

#include <algorithm>
#include <vector>

#include "core/check.hpp"
#include "intranode/copy_batch.hpp"
#include "core/cuda_check.hpp"
#include "core/stream_write.hpp"

namespace epcomm {

CopyEngineDispatch::CopyEngineDispatch(Buffer::Impl& m, const HtDispatchPlan& plan, std::int64_t staged_rows,
                                       std::int64_t row_bytes, const bool* token_ranks, int straight,
                                       cudaStream_t comm)
    : m_(m),
      plan_(plan),
      comm_(comm),
      staging_(DeviceTensor::empty(m.allocator, DType::kU8,
                                   {std::max<std::int64_t>(1, staged_rows) * row_bytes}, comm)),
      staged_rows_(staged_rows),
      token_ranks_(token_ranks),
      straight_mode_(straight) {}

CopyEngineDispatch::~CopyEngineDispatch() {
  // Before staging is released on the communication stream, and what the copy streams read with it.
  if (!joined_) (void)m_.join_copy_stream();
  if (!own_joined_) (void)m_.join_own_copy_stream();
}

void CopyEngineDispatch::launch(HtDispatchArgs& d, const char* label, int blocks) {
  d.num_senders = blocks;
  m_.timer.begin(comm_, label);
  launch_ht_dispatch(d, blocks, Launch::kPdl, comm_);
  m_.timer.end(comm_);
}

void CopyEngineDispatch::pack(HtDispatchArgs d) {
  const int K = plan_.copy_chunks;
  d.stage_x = static_cast<std::uint8_t*>(staging_.data());
  d.phased = false;
  d.pack_chunks = K;
  d.packed = m_.counter(Buffer::Impl::kPacked);
  // Every call counts from zero: a call that failed halfway leaves nothing behind.
  EPCOMM_CUDA_CHECK(cudaMemsetAsync(d.packed, 0, sizeof(std::uint64_t) * static_cast<std::size_t>(K), comm_));
  // The copy stream forks here, after the reset. NOTE: under stream capture the graph would know
  // nothing of the counts (a value wait can be ordered before the pack it waits for): there the copy
  // stream forks after the whole pack instead and waits for no count.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  EPCOMM_CUDA_CHECK(cudaStreamIsCapturing(comm_, &capture));
  wait_for_counts_ = capture == cudaStreamCaptureStatusNone;
  if (wait_for_counts_) m_.copy_fork.record(comm_);
  // Straight copies need the host to read is_token_in_rank (not under capture, where the host
  // reads nothing): plan_copies() fetches it once the counts say some rank qualifies.
  straight_ = token_ranks_ != nullptr && wait_for_counts_ && d.num_tokens > 0;
  straight_self_ = straight_ && straight_mode_ >= kStraightAll;
  if (straight_self_) {
    // The own rows' copies may start once notify is done (the opening barrier), beside the pack.
    EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(m_.own_copy.get(), m_.copy_fork.get(), 0));
    own_joined_ = false;
  }
  d.straight = straight_;
  launch(d, "pack", plan_.num_senders);
  if (!wait_for_counts_) m_.copy_fork.record(comm_);
  m_.timer.host_step("packs-queued");
}

void CopyEngineDispatch::plan_copies(const HtDispatchArgs& d, const DispatchHandle::State& h) {
  const int G = m_.view.num_domain_ranks, me = m_.view.domain_rank;
  const int K = plan_.copy_chunks, C = plan_.num_channels;
  const std::int32_t* counts = h.count_matrix_host.data();
  EPCOMM_REQUIRE(first_staged_row(counts, G, me, G) <= staged_rows_, ErrorCategory::kInternal,
                 "copy-engine dispatch: staging too small");
  staged_copies_ = dispatch_chunk_copies(counts, h.send_prefix_host.data(), G, me, K);
  straight_copies_.clear();
  own_copies_.clear();
  // The ranks whose rows the copy engine takes straight from x (the pack decided alike).
  std::vector<char> straight(static_cast<std::size_t>(G), 0);
  for (int dst = 0; dst < G; ++dst)
    straight[static_cast<std::size_t>(dst)] =
        straight_ && (dst != me || straight_self_) && straight_copies(counts[me * G + dst], d.num_tokens);
  EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(m_.copy.get(), m_.copy_fork.get(), 0));
  joined_ = false;
  if (std::find(straight.begin(), straight.end(), 1) != straight.end()) {
    // Those ranks' payload was not packed: the copy engine takes it from x, run by run, which the
    // host reads from is_token_in_rank (T x G bytes, copied now: only calls with such a rank wait).
    const auto bytes = static_cast<std::size_t>(d.num_tokens) * static_cast<std::size_t>(G);
    if (m_.token_ranks.bytes() < bytes) {
      // NOTE: an earlier call that failed before waiting for its copy may still be writing the old one.
      EPCOMM_CUDA_CHECK(cudaStreamSynchronize(m_.copy.get()));
      m_.token_ranks = MappedHostBuffer(bytes);
    }
    EPCOMM_CUDA_CHECK(
        cudaMemcpyAsync(m_.token_ranks.host(), token_ranks_, bytes, cudaMemcpyDeviceToHost, m_.copy.get()));
    m_.token_ranks_ready.record(m_.copy.get());
    std::erase_if(staged_copies_,
                  [&](const ChunkCopy& c) { return straight[static_cast<std::size_t>(c.dst)] != 0; });
    EPCOMM_CUDA_CHECK(cudaEventSynchronize(m_.token_ranks_ready.get()));
    straight_copies_ =
        dispatch_straight_copies(static_cast<const bool*>(m_.token_ranks.host()), d.num_tokens, counts, G, me,
                                 K, C, plan_.tokens_per_channel, straight_self_);
    std::vector<std::int64_t> rows(static_cast<std::size_t>(G), 0);
    for (const StraightCopy& c : straight_copies_) rows[static_cast<std::size_t>(c.dst)] += c.rows;
    for (int dst = 0; dst < G; ++dst)
      EPCOMM_REQUIRE(!straight[static_cast<std::size_t>(dst)] || rows[dst] == counts[me * G + dst],
                     ErrorCategory::kInternal, "copy-engine dispatch: is_token_in_rank gives ", rows[dst],
                     " rows to rank ", dst, ", notify counted ", counts[me * G + dst]);
    // The own rows go to the outputs on their own stream, in no chunks (nothing waits for one): a
    // run cut at a chunk boundary is one copy again.
    for (const StraightCopy& c : straight_copies_) {
      if (c.dst != me) continue;
      if (!own_copies_.empty() && own_copies_.back().token + own_copies_.back().rows == c.token)
        own_copies_.back().rows += c.rows;
      else
        own_copies_.push_back(c);
    }
    std::erase_if(straight_copies_, [&](const StraightCopy& c) { return c.dst == me; });
    m_.straight_copies_queued += straight_copies_.size();
    m_.own_straight_copies_queued += own_copies_.size();
  }
  next_staged_ = 0;
  next_straight_ = 0;
}

void CopyEngineDispatch::queue_chunk(const HtDispatchArgs& d, int k) {
  const int G = m_.view.num_domain_ranks, me = m_.view.domain_rank;
  const int K = plan_.copy_chunks, C = plan_.num_channels;
  const auto row_bytes = static_cast<std::size_t>(d.region.row_bytes);
  const auto* staging = static_cast<const char*>(staging_.data());
  const auto* x = reinterpret_cast<const char*>(d.x);
  const cudaStream_t copy = m_.copy.get();
  auto region_x = [&](int dst, std::int64_t row) {
    return RegionLayout::data(m_.view.peer_base[dst]) + d.region.x_offset +
           static_cast<std::size_t>(row) * row_bytes;
  };
  CopyBatch batch;
  std::vector<char> has_rows(static_cast<std::size_t>(G), 0);
  m_.timer.begin_copy(copy, "chunk");
  // Straight copies read only x: they need not wait for the pack.
  for (; next_straight_ < straight_copies_.size() && straight_copies_[next_straight_].chunk == k;
       ++next_straight_) {
    const StraightCopy& c = straight_copies_[next_straight_];
    batch.add(region_x(c.dst, c.region_row), x + static_cast<std::size_t>(c.token) * row_bytes,
              static_cast<std::size_t>(c.rows) * row_bytes);
    has_rows[static_cast<std::size_t>(c.dst)] = 1;
  }
  batch.flush(copy);
  // The packed rows, and every peer's metadata for the chunk (which its mark publishes): a chunk is
  // packed once every warp of the pack launch has counted it.
  const auto warps = static_cast<std::uint64_t>(plan_.num_senders) * kHtWarpsPerBlock;
  if (wait_for_counts_) stream_wait_at_least_u64(copy, m_.counter(Buffer::Impl::kPacked) + k, warps);
  for (; next_staged_ < staged_copies_.size() && staged_copies_[next_staged_].chunk == k; ++next_staged_) {
    const ChunkCopy& c = staged_copies_[next_staged_];
    batch.add(region_x(c.dst, c.region_row), staging + static_cast<std::size_t>(c.stage_row) * row_bytes,
              static_cast<std::size_t>(c.rows) * row_bytes);
    has_rows[static_cast<std::size_t>(c.dst)] = 1;
  }
  batch.flush(copy);
  // After the chunk's copies (the write's fence orders them first), its first channel stands for
  // all of its channels in the region of each peer that gets rows of it.
  // NOTE: only those peers: one with no rows in the chunk does not wait for the write, so it could
  // finish this dispatch, zero its counters in the next notify, and then see the late write
  // mark the chunk complete in the next dispatch before any row of it arrived.
  const int flag_channel = copy_chunk_channel(k, K, C);
  for (int dst = 0; dst < G; ++dst)
    if (has_rows[static_cast<std::size_t>(dst)])
      stream_write_u64(copy, RegionLayout::progress(m_.view.peer_base[dst], me, flag_channel),
                       kChannelComplete);
  m_.timer.end_copy(copy);
}

void CopyEngineDispatch::finish(HtDispatchArgs d, const DispatchHandle::State& h, cudaStream_t outputs_stream,
                                cudaStream_t caller) {
  const int G = m_.view.num_domain_ranks;
  const int K = plan_.copy_chunks;
  EPCOMM_REQUIRE(K > 0 && h.send_prefix_host.size() == static_cast<std::size_t>(G * (K + 1)) &&
                     h.count_matrix_host.size() == static_cast<std::size_t>(G * G),
                 ErrorCategory::kInternal, "copy-engine dispatch without the host's counts");
  // NOTE: should anything below fail, the communication stream still joins the copy stream before
  // the error leaves: staging is released on it while copies already queued may read it.
  try {
    plan_copies(d, h);
    // The first chunk's copies first (the copy engine bounds the call), then the last launch: this
    // rank's own rows (every channel) while the copy engine carries the peers', then every warp
    // receives (spinning until the copy streams' writes land); the other chunks' copies are queued
    // while it runs (each copy costs the host ~5 us: queued first, they would hold the launch back).
    queue_chunk(d, 0);
    d.stage_x = nullptr;
    d.pack_chunks = 0;
    d.packed = nullptr;
    d.self_only = true;
    d.phased = true;
    d.signal_chunks = K;
    d.straight_self = straight_self_;
    queue_own_copies(d, outputs_stream);
    launch(d, "dispatch", blocks_beside_copies(plan_.num_blocks, m_.num_sms));
    for (int k = 1; k < K; ++k) queue_chunk(d, k);
    m_.timer.host_step("copies-queued");
  } catch (...) {
    (void)m_.join_copy_stream();
    if (!own_joined_) (void)m_.join_own_copy_stream();
    // NOTE: the own copies and the last launch, queued before later steps that may throw, write the
    // outputs (released on the caller's stream as the error unwinds) and read x: the caller's
    // stream waits for all of it, as it would for the call's event.
    if (caller != comm_ && cudaEventRecord(m_.order_event.get(), comm_) == cudaSuccess)
      (void)cudaStreamWaitEvent(caller, m_.order_event.get(), 0);
    throw;
  }
  // The call's event covers the copies, and the next operation finds the regions free.
  EPCOMM_CUDA_CHECK(m_.join_copy_stream());
  joined_ = true;
  if (!own_joined_) {
    EPCOMM_CUDA_CHECK(m_.join_own_copy_stream());
    own_joined_ = true;
  }
}

void CopyEngineDispatch::queue_own_copies(const HtDispatchArgs& d, cudaStream_t outputs_stream) {
  if (own_copies_.empty()) return;
  // After notify (pack() made own_copy wait for it) and the outputs' allocation.
  const cudaStream_t own = m_.own_copy.get();
  if (outputs_stream != nullptr) {
    m_.own_copy_fork.record(outputs_stream);
    EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(own, m_.own_copy_fork.get(), 0));
  }
  const auto row_bytes = static_cast<std::size_t>(d.region.row_bytes);
  const auto* x = reinterpret_cast<const char*>(d.x);
  CopyBatch batch;
  m_.timer.begin_copy(own, "own");
  for (const StraightCopy& c : own_copies_)
    batch.add(d.recv_x + static_cast<std::size_t>(c.region_row) * row_bytes,
              x + static_cast<std::size_t>(c.token) * row_bytes,
              static_cast<std::size_t>(c.rows) * row_bytes);
  batch.flush(own);
  m_.timer.end_copy(own);
}

}  // namespace epcomm
