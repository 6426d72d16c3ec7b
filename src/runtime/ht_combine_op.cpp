// Buffer::combine: checks, prepare (zero progress, barrier), [pull mode: the copy engine stages the
// rows], combine kernel.
#include "kernels/ht_args.hpp"
#include "runtime/buffer_impl.hpp"
#include "runtime/check.hpp"
#include "runtime/cuda_check.hpp"
#include "runtime/ht_plan.hpp"
#include "runtime/op_checks.hpp"

namespace epcomm {

namespace {

// Pull mode with the copy engine: copies the rows (and weight rows) this rank received from each
// peer into its own region, at the index they have in x, where that peer's reducers read them.
void stage_rows(const HtCombineArgs& c, const std::int32_t* count_matrix, cudaStream_t stream) {
  const HtCombineLayout& l = c.region;
  char* region = RegionLayout::data(c.view.peer_base[c.view.domain_rank]);
  const auto row_bytes = static_cast<std::size_t>(l.row_bytes);
  const std::size_t w_bytes = sizeof(float) * static_cast<std::size_t>(l.num_topk);
  for (const StagedRows& r : pull_staged_rows(count_matrix, c.view.num_domain_ranks, c.view.domain_rank)) {
    const auto first = static_cast<std::size_t>(r.first), count = static_cast<std::size_t>(r.count);
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(region + l.x_offset + first * row_bytes,
                                      reinterpret_cast<const char*>(c.x) + first * row_bytes,
                                      count * row_bytes, cudaMemcpyDeviceToDevice, stream));
    if (l.num_topk > 0)
      EPCOMM_CUDA_CHECK(cudaMemcpyAsync(region + l.weights_offset + first * w_bytes,
                                        reinterpret_cast<const char*>(c.topk_weights) + first * w_bytes,
                                        count * w_bytes, cudaMemcpyDeviceToDevice, stream));
  }
}

}  // namespace

CombineResult Buffer::combine(const CombineArgs& a, const CallOptions& options) {
  check_status();
  Impl& m = *impl_;
  const int G = m.domains.ranks_per_domain;
  const checks::CombineShape shape = checks::check_combine_args(a, m.num_ranks());
  checks::check_inputs_outside_region(a, m.region.get(), m.region.bytes());
  const HtCombinePlan plan = plan_ht_combine(a.config.num_sms, m.num_sms, m.ht_tuning.phased);
  const HtCombineLayout region = HtCombineLayout::make(static_cast<std::size_t>(m.options.num_nvl_bytes),
                                                       shape.hidden * 2, shape.num_topk);
  const DispatchHandle& h = *a.handle;
  // Every rank checks every rank's rows from the same host copy of the counts, so all stop alike.
  // (In worst-case mode the kernel's guard does this on the device.) Push: a rank's region takes
  // the rows it gets back; pull: the rows it received, staged where they sit in x.
  const bool pull = m.ht_tuning.combine_pull != kCombinePush;
  // The copy engine stages from the host's counts (none in worst-case mode: the SMs stage there).
  const bool staged = m.ht_tuning.combine_pull == kCombinePullCopyEngine && !h.count_matrix_host.empty();
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
  c.phased = plan.phased;
  c.pull = pull;
  c.staged = staged;
  c.num_shares = staged ? 1 : plan.num_shares;  // staged: each peer's rows are published at once
  c.publish_rows = m.ht_tuning.combine_publish_rows;
  c.send_slot = static_cast<const std::int32_t*>(h.send_slot.data());
  c.count_matrix = static_cast<const std::int32_t*>(h.count_matrix.data());
  c.out = static_cast<std::uint16_t*>(out.x.data());
  c.out_weights = static_cast<float*>(out.topk_weights.data());
  m.timer.begin(scope.comm(), "prepare+combine");
  launch_ht_prepare(m.view, plan.num_shares, nullptr, OpId::kCombine, scope.comm());
  // NOTE: after prepare's barrier: every peer has finished the operations that read this region.
  if (staged) stage_rows(c, h.count_matrix_host.data(), scope.comm());
  launch_ht_combine(c, plan.num_blocks, scope.comm());
  m.timer.end(scope.comm());
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
