// Buffer::combine: checks, prepare (zero progress, barrier), [pull mode: the copy engine stages the
// rows; copy-engine push: it writes them into the owners' regions beside the kernel], combine kernel.
#include <algorithm>

#include "internode/md_buffer.hpp"
#include "intranode/ht_args.hpp"
#include "buffer/barrier.hpp"
#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "intranode/copy_batch.hpp"
#include "intranode/dispatch_handle.hpp"
#include "core/cuda_check.hpp"
#include "intranode/ht_plan.hpp"
#include "intranode/op_checks.hpp"
#include "core/stream_write.hpp"

namespace epcomm {

namespace {

// Adds to `batch` the copy of `rows` rows of combine's input (payload and weight rows) from row
// `from` of x to row `to` of the combine sections of the region at `region_base`.
void copy_rows(const HtCombineArgs& c, void* region_base, std::int64_t from, std::int64_t to,
               std::int64_t rows, CopyBatch& batch) {
  const HtCombineLayout& l = c.region;
  char* region = RegionLayout::data(region_base);
  const auto row_bytes = static_cast<std::size_t>(l.row_bytes);
  const std::size_t w_bytes = sizeof(float) * static_cast<std::size_t>(l.num_topk);
  const auto f = static_cast<std::size_t>(from), t = static_cast<std::size_t>(to),
             n = static_cast<std::size_t>(rows);
  batch.add(region + l.x_offset + t * row_bytes, reinterpret_cast<const char*>(c.x) + f * row_bytes,
            n * row_bytes);
  if (l.num_topk > 0)
    batch.add(region + l.weights_offset + t * w_bytes,
              reinterpret_cast<const char*>(c.topk_weights) + f * w_bytes, n * w_bytes);
}

// Pull mode with the copy engine: copies the rows (and weight rows) this rank received from each
// peer into its own region, at the index they have in x, where that peer's reducers read them.
void stage_rows(const HtCombineArgs& c, const std::int32_t* count_matrix, cudaStream_t stream) {
  const DomainView& v = c.view;
  CopyBatch batch;
  for (const StagedRows& r : pull_staged_rows(count_matrix, v.num_domain_ranks, v.domain_rank))
    copy_rows(c, v.peer_base[v.domain_rank], r.first, r.first, r.count, batch);
  batch.flush(stream);
}

// Copy-engine push, queued after prepare's barrier on `comm`: on the copy stream (ordered after the
// barrier by an event), each chunk's copies of x rows and weight rows into the owners' regions, each
// followed by a stream write that publishes the share to its owner; the kernel is queued on the
// communication stream once the first chunk's copies are, and that stream joins the copy stream.
void push_by_copy_engine(Buffer::Impl& m, const HtCombineArgs& c, int K, const std::int32_t* count_matrix,
                         int num_blocks, cudaStream_t comm) {
  const DomainView& v = c.view;
  const cudaStream_t copy = m.copy.get();
  m.copy_fork.record(comm);
  EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(copy, m.copy_fork.get(), 0));
  const std::vector<CombineCopy> copies =
      combine_chunk_copies(count_matrix, v.num_domain_ranks, v.domain_rank, K);
  bool launched = false;
  CopyBatch batch;
  // NOTE: should anything below fail, the communication stream still joins the copy stream before
  // the error leaves (copies already queued read x, which the caller may then release).
  try {
    for (auto first = copies.begin(); first != copies.end();) {
      const int chunk = first->chunk;
      if (chunk > 0 && !launched) {
        launch_ht_combine(c, num_blocks, comm);
        launched = true;
      }
      auto last = first;
      m.timer.begin_copy(copy, "chunk");
      for (; last != copies.end() && last->chunk == chunk; ++last)
        copy_rows(c, v.peer_base[last->owner], last->x_row, last->region_row, last->rows, batch);
      batch.flush(copy);
      // Each owner's reducers wait for share `chunk` of my rows to reach its size.
      for (; first != last; ++first)
        stream_write_u64(copy, RegionLayout::progress(v.peer_base[first->owner], v.domain_rank, chunk),
                         static_cast<std::uint64_t>(first->rows));
      m.timer.end_copy(copy);
    }
    if (!launched) launch_ht_combine(c, num_blocks, comm);
  } catch (...) {
    (void)m.join_copy_stream();
    throw;
  }
  // x stays the caller's until the copies are done: the call's event covers them.
  EPCOMM_CUDA_CHECK(m.join_copy_stream());
}

}  // namespace

CombineResult Buffer::combine(const CombineArgs& a, const CallOptions& options) {
  check_status();
  Impl& m = *impl_;
  checks::require_high_throughput_buffer(m.ll != nullptr, "combine");
  if (m.md) return md_combine(m, a, options);  // internode/md_combine_op.cpp
  const int G = m.domains.ranks_per_domain;
  const checks::CombineShape shape = checks::check_combine_args(a, m.num_ranks());
  checks::check_inputs_outside_region(a, m.region.get(), m.region.bytes());
  const HtCombinePlan plan = plan_ht_combine(a.config.num_sms, m.num_sms);
  const HtCombineLayout region = HtCombineLayout::make(static_cast<std::size_t>(m.options.num_nvl_bytes),
                                                       shape.hidden * 2, shape.num_topk);
  const DispatchHandle::State& h = handle_state(*a.handle);
  check_handle_mask(h, m.mask_changes, "combine");
  // Every rank checks every rank's rows from the same host copy of the counts, so all stop alike.
  // (In worst-case mode the kernel's guard does this on the device.) Push: a rank's region takes
  // the rows it gets back; pull: the rows it received, staged where they sit in x.
  // The copy engine works from the host's counts (none in worst-case mode: the SMs move rows there).
  const bool host_counts = !h.count_matrix_host.empty();
  const int copy_chunks = host_counts ? m.ht_tuning.combine_copy_chunks : 0;
  const bool pull = copy_chunks == 0 && m.ht_tuning.combine_pull != kCombinePush;
  const bool staged = pull && m.ht_tuning.combine_pull == kCombinePullCopyEngine && host_counts;
  if (!h.count_matrix_host.empty())
    check_rows_fit(combine_region_rows(h.count_matrix_host.data(), G, pull), region.cap_rows,
                   static_cast<std::size_t>(region.row_bytes) + 4u * static_cast<std::size_t>(shape.num_topk),
                   "combine");

  CommScope scope(m, options);
  CombineResult out;
  const cudaStream_t s = scope.alloc_stream();
  out.x = DeviceTensor::empty(m.allocator, DType::kBF16, {shape.num_tokens, shape.hidden}, s);
  if (shape.num_topk > 0)
    out.topk_weights = DeviceTensor::empty(m.allocator, DType::kF32, {shape.num_tokens, shape.num_topk}, s);
  scope.allocations_ready();

  HtCombineArgs c;
  c.view = m.view;
  c.region = region;
  c.x = static_cast<const std::uint16_t*>(a.x.data);
  c.topk_weights = static_cast<const float*>(a.topk_weights.data);
  c.bias0 = static_cast<const std::uint16_t*>(a.bias0.data);
  c.bias1 = static_cast<const std::uint16_t*>(a.bias1.data);
  c.hidden = shape.hidden;
  c.num_tokens = shape.num_tokens;
  c.num_senders = plan.num_senders;
  c.pull = pull;
  c.staged = staged;
  c.copy_pushed = copy_chunks > 0;
  // Staged: each peer's rows are published at once; copy-engine push: chunk by chunk, and the
  // reducers take their tokens slice by slice in the order the chunks land.
  c.num_shares = copy_chunks > 0 ? copy_chunks : staged ? 1 : plan.num_shares;
  c.reduce_segments = std::max(1, copy_chunks);
  c.send_slot = static_cast<const std::int32_t*>(h.send_slot.data());
  c.count_matrix = static_cast<const std::int32_t*>(h.count_matrix.data());
  c.out = static_cast<std::uint16_t*>(out.x.data());
  c.out_weights = static_cast<float*>(out.topk_weights.data());
  m.timer.begin(scope.comm(), "prepare+combine");
  const std::int32_t schedule = (pull ? kSigPull : 0) | (staged || copy_chunks > 0 ? kSigCopyEngine : 0);
  const CallSignature sig = make_signature({.op = static_cast<std::int32_t>(OpId::kCombine),
                                            .hidden = shape.hidden,
                                            .num_topk = shape.num_topk,
                                            .num_blocks = plan.num_senders,
                                            .flags = schedule});
  launch_ht_prepare(m.view, plan.num_shares, nullptr, OpId::kCombine, sig, Launch::kPdl, scope.comm());
  // NOTE: after prepare's barrier: every peer has finished the operations that read this region.
  if (staged) stage_rows(c, h.count_matrix_host.data(), scope.comm());
  if (copy_chunks > 0)
    push_by_copy_engine(m, c, copy_chunks, h.count_matrix_host.data(),
                        blocks_beside_copies(plan.num_blocks, m.num_sms), scope.comm());
  else
    launch_ht_combine(c, plan.num_blocks, scope.comm());
  // NOTE: pull: this rank's progress counters count the rows it staged for the peers, who read them.
  // The next operation (combine's prepare, dispatch's notify) zeroes them before its own barrier, so
  // a rank a whole call ahead would erase counts a slower peer still waits for: a barrier first.
  if (pull) launch_domain_barrier(m.view, scope.comm(), OpId::kCombine);
  m.timer.end(scope.comm());
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
