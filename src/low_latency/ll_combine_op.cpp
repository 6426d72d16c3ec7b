// Buffer::low_latency_combine: checks, one launch (or two with the receive hook), the output view.
#include <algorithm>
#include <cstdint>
#include <memory>

#include "low_latency/ll_args.hpp"
#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm {

LlCombineResult Buffer::low_latency_combine(const Tensor& y, const Tensor& topk_idx,
                                            const Tensor& topk_weights, const LlHandle& handle,
                                            const LlCombineOptions& o, const CallOptions& options) {
  check_status();
  LlState& st = checks::require_ll_state(impl_->ll.get(), "low_latency_combine");
  Impl& m = *impl_;
  const int half = static_cast<int>(st.num_combines & 1u);
  checks::check_not_in_flight(st, kLlKindCombine, half);
  char* ws = st.workspace;
  checks::check_ll_combine_args(y, topk_idx, topk_weights, handle, o, st, m.num_ranks(),
                                st.layout.zero_copy_y(ws, half));

  const LlHandle::State& h = ll_handle_state(handle);
  LlCombineArgs a;
  a.view = st.view;
  a.layout = st.layout;
  a.workspace = ws;
  a.y = static_cast<const std::uint16_t*>(y.data);
  a.topk_idx = topk_idx.data;
  a.idx_bytes = static_cast<int>(dtype_size(topk_idx.dtype));
  a.topk_weights = static_cast<const float*>(topk_weights.data);
  a.num_tokens = h.num_tokens;
  a.num_topk = h.num_topk;
  a.by_domain_ranks = FastDivisor(std::max(st.view.num_domain_ranks, 1));
  a.by_topk = FastDivisor(std::max(h.num_topk, 1));
  a.dispatch_half = h.half;
  a.half = half;
  a.phases = o.return_recv_hook ? kLlSend : kLlBoth;
  a.pull = o.zero_copy && st.pull_combine;
  a.trace = st.trace_of(kLlKindCombine);
  a.out = o.out.defined() ? static_cast<std::uint16_t*>(o.out.data) : st.layout.combine_out(ws, half);
  a.signature = make_signature({.op = static_cast<std::int32_t>(OpId::kLlCombine),
                                .hidden = st.layout.hidden,
                                .num_topk = h.num_topk,
                                .num_blocks = st.num_blocks,
                                .max_tokens = st.layout.max_tokens,
                                .num_experts = st.layout.num_experts,
                                .flags = a.pull ? kSigPull : 0});

  CommScope scope(m, options, /*direct=*/m.on_caller_stream && !o.return_recv_hook);
  m.timer.begin(scope.comm(), "combine");
  st.launch_combine(a, st.num_blocks, scope.comm());
  m.timer.end(scope.comm());
  ++st.num_combines;

  LlCombineResult out;
  out.out = Tensor::contiguous(a.out, DType::kBF16, {h.num_tokens, st.layout.hidden});  // o.out when given
  st.pending[kLlKindCombine][half] = nullptr;
  if (o.return_recv_hook) {
    // As in dispatch: the receive runs on the caller's stream after the send.
    const EventHandle sent = EventHandle::record(scope.comm());
    const cudaStream_t stream = options.stream;
    const int num_blocks = st.num_blocks;
    const LlCombineLauncher launch = st.launch_combine;
    auto received = std::make_shared<bool>(false);
    st.pending[kLlKindCombine][half] = received;
    if (o.zero_copy) st.zero_copy_reads[h.half] = received;
    out.receive = [a, sent, stream, num_blocks, launch, received]() mutable {
      EPCOMM_CHECK_ARG(!*received, "receive: this low-latency combine was already received");
      // NOTE: no check_status() here: the send already ran on every rank, so the receive must
      // run too (its credits keep the ranks in step); a reported failure surfaces on the next call.
      sent.wait(stream);
      a.phases = kLlRecv;
      launch(a, num_blocks, stream);
      *received = true;
    };
  }
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
