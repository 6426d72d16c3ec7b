// Buffer::low_latency_dispatch: checks, one launch (or two with the receive hook), output views.
#include <memory>

#include "low_latency/ll_args.hpp"
#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm {

namespace {

// Views of the outputs of half `half` (see LlDispatchResult for the shapes and strides).
void fill_views(LlDispatchResult& out, const LlLayout& l, void* ws, int half, const LlDispatchOptions& o) {
  const std::int64_t nle = l.num_local_experts, cap = l.capacity;
  out.recv_x = Tensor::contiguous(l.recv_x(ws, half), o.use_fp8 ? DType::kFP8E4M3 : DType::kBF16,
                                  {nle, cap, l.hidden});
  if (o.use_fp8) {
    // Column-major in the last two dimensions: physically [nle, words, capacity].
    const std::int64_t words = o.use_ue8m0 ? l.num_scale_words : l.num_scales;
    out.recv_scales = Tensor::strided(l.recv_scales(ws, half), o.use_ue8m0 ? DType::kI32 : DType::kF32,
                                      {nle, cap, words}, {words * cap, 1, cap});
  }
  out.recv_count = Tensor::contiguous(l.recv_count(ws, half), DType::kI32, {nle});
  out.layout_range = Tensor::contiguous(l.layout_range(ws, half), DType::kI64, {nle, l.num_ranks});
  out.src_info = Tensor::contiguous(l.src_info(ws, half), DType::kI32, {nle, cap});
}

}  // namespace

LlDispatchResult Buffer::low_latency_dispatch(const Tensor& x, const Tensor& topk_idx,
                                              const LlDispatchOptions& o, const CallOptions& options) {
  check_status();
  LlState& st = checks::require_ll_state(impl_->ll.get(), "low_latency_dispatch");
  Impl& m = *impl_;
  const checks::LlDispatchShape shape =
      checks::check_ll_dispatch_args(x, topk_idx, o, st.options, m.num_ranks());
  const int half = static_cast<int>(st.num_dispatches & 1u);
  checks::check_not_in_flight(st, kLlKindDispatch, half);
  checks::check_dispatch_outputs_free(st, half);

  LlDispatchArgs a;
  a.view = st.view;
  a.layout = st.layout;
  a.workspace = st.workspace;
  a.x = static_cast<const std::uint16_t*>(x.data);
  a.topk_idx = topk_idx.data;
  a.idx_bytes = shape.idx_bytes;
  a.num_tokens = shape.num_tokens;
  a.num_topk = shape.num_topk;
  a.use_fp8 = o.use_fp8;
  a.round_scale = o.round_scale;
  a.use_ue8m0 = o.use_ue8m0;
  a.half = half;
  a.phases = o.return_recv_hook ? kLlSend : kLlBoth;
  a.direct = st.direct_dispatch;
  a.stats = static_cast<std::int32_t*>(o.cumulative_local_expert_recv_stats.data);
  a.trace = st.trace_of(kLlKindDispatch);
  a.signature = make_signature({.op = static_cast<std::int32_t>(OpId::kLlDispatch),
                                .hidden = st.layout.hidden,
                                .num_topk = shape.num_topk,
                                .num_blocks = st.num_blocks,
                                .max_tokens = st.layout.max_tokens,
                                .num_experts = st.layout.num_experts,
                                .flags = (o.use_fp8 ? kSigFp8 : 0) | (o.round_scale ? kSigRoundScale : 0) |
                                         (o.use_ue8m0 ? kSigUe8m0 : 0)});

  CommScope scope(m, options, /*direct=*/m.on_caller_stream && !o.return_recv_hook);
  m.timer.begin(scope.comm(), "dispatch");
  st.launch_dispatch(a, st.num_blocks, scope.comm());
  m.timer.end(scope.comm());
  ++st.num_dispatches;

  LlDispatchResult out;
  fill_views(out, st.layout, st.workspace, half, o);
  auto state = std::make_shared<LlHandle::State>();
  LlHandle::State& h = *state;
  h.num_ranks = m.num_ranks();
  h.num_local_experts = st.layout.num_local_experts;
  h.num_tokens = shape.num_tokens;
  h.num_topk = shape.num_topk;
  h.max_tokens_per_rank = st.options.max_tokens_per_rank;
  h.hidden = st.options.hidden;
  h.recv_count = out.recv_count;
  h.layout_range = out.layout_range;
  h.src_info = out.src_info;
  h.owner = &st;
  h.dispatch_index = st.num_dispatches;
  h.half = half;
  if (o.return_recv_hook) {
    // The receive runs on the caller's stream once the send is done; it reads the operation's
    // sequence number the send left in issued[half] (ll_args.hpp).
    const EventHandle sent = EventHandle::record(scope.comm());
    h.received = std::make_shared<bool>(false);
    const cudaStream_t stream = options.stream;
    const int num_blocks = st.num_blocks;
    const LlDispatchLauncher launch = st.launch_dispatch;
    out.receive = [a, sent, stream, num_blocks, launch, received = h.received]() mutable {
      EPCOMM_CHECK_ARG(!*received, "receive: this low-latency dispatch was already received");
      // NOTE: no check_status() here: the send already ran on every rank, so the receive must
      // run too (its credits keep the ranks in step); a reported failure surfaces on the next call.
      sent.wait(stream);
      a.phases = kLlRecv;
      launch(a, num_blocks, stream);
      *received = true;
    };
  }
  st.pending[kLlKindDispatch][half] = h.received;
  out.handle = HandleAccess::make(std::move(state));
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
