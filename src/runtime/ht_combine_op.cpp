// Buffer::combine: checks, prepare (zero progress, barrier), combine kernel.
#include "kernels/ht_args.hpp"
#include "runtime/buffer_impl.hpp"
#include "runtime/check.hpp"
#include "runtime/ht_plan.hpp"
#include "runtime/op_checks.hpp"

namespace epcomm {

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
  const bool pull = m.ht_tuning.combine_pull;
  if (!h.count_matrix_host.empty())
    check_rows_fit(
        pull ? rows_received(h.count_matrix_host.data(), G) : rows_returned(h.count_matrix_host.data(), G),
        region.cap_rows,
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
  c.num_shares = plan.num_shares;
  c.publish_rows = m.ht_tuning.combine_publish_rows;
  c.send_slot = static_cast<const std::int32_t*>(h.send_slot.data());
  c.count_matrix = static_cast<const std::int32_t*>(h.count_matrix.data());
  c.out = static_cast<std::uint16_t*>(out.x.data());
  c.out_weights = static_cast<float*>(out.topk_weights.data());
  m.timer.begin(scope.comm(), "prepare+combine");
  launch_ht_prepare(m.view, plan.num_shares, nullptr, scope.comm());
  launch_ht_combine(c, plan.num_blocks, scope.comm());
  m.timer.end(scope.comm());
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
