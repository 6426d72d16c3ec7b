// Buffer::dispatch: checks, notify (or prepare for a cached dispatch), outputs, dispatch kernel.
#include <cstring>
#include <optional>

#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/device_status.hpp"
#include "epcomm/error.hpp"
#include "internode/md_buffer.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/dispatch_outputs.hpp"
#include "intranode/ht_args.hpp"
#include "intranode/ht_dispatch_copy.hpp"
#include "intranode/ht_layout_notify.hpp"
#include "intranode/ht_plan.hpp"
#include "intranode/op_checks.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

namespace {

template <typename T>
T* data_of(const DeviceTensor& t) {
  return static_cast<T*>(t.data());
}

// The fused launch's scratch (Buffer::Impl::preamble_scratch): the expert counts, then its counters.
std::int32_t* fused_expert_counts(const Buffer::Impl& m) {
  return m.preamble_scratch.as<std::int32_t>();
}
FusedScratch fused_scratch(const Buffer::Impl& m) {
  std::int32_t* counters = m.preamble_scratch.as<std::int32_t>() + kFusedLayoutMaxExperts;
  auto* first_entry = reinterpret_cast<unsigned long long*>(counters + 2);  // 8-byte aligned
  return {reinterpret_cast<unsigned*>(counters), reinterpret_cast<unsigned*>(counters + 1), first_entry,
          first_entry + 1, reinterpret_cast<std::uint64_t*>(first_entry + 1 + kFusedTracePhases)};
}

// The layout half of the fused launch: its expert counts into the scratch, its flags into
// `token_in_rank` ([T, G] bool); no rank or domain counts (notify needs none).
LayoutArgs fused_layout_args(const Buffer::Impl& m, const DispatchArgs& a, const checks::DispatchShape& shape,
                             const DeviceTensor& token_in_rank) {
  LayoutArgs l =
      layout_inputs(a.topk_idx, shape.num_experts, m.num_ranks(), m.domains.ranks_per_domain, m.view);
  l.num_tokens_per_expert = fused_expert_counts(m);
  l.is_token_in_rank = data_of<bool>(token_in_rank);
  return l;
}

// Launches notify and fills the routing part of the handle that needs no host synchronisation.
// Returns the token-to-rank flags notify reads: the caller's, or those the fused launch derives
// (kept in the routing's allocation, which the handle owns).
const bool* launch_notify(Buffer::Impl& m, const DispatchArgs& a, const checks::DispatchShape& shape,
                          const HtDispatchPlan& plan, CommScope& scope, DispatchHandle::State& h) {
  const int G = m.domains.ranks_per_domain;
  const int C = plan.num_channels;
  const int nle = shape.num_experts / m.num_ranks();
  const bool worst = a.num_worst_tokens > 0;
  EPCOMM_CHECK_ARG(nle <= max_local_experts(G, C), "num_tokens_per_expert: at most ", max_local_experts(G, C),
                   " local experts per rank supported, got ", nle);
  const auto i32 = [](std::initializer_list<std::int64_t> dims) {
    return Tensor::contiguous(nullptr, DType::kI32, dims);
  };
  std::vector<Tensor> layouts = {
      i32({shape.num_tokens, G}), i32({G, G}), i32({G, C}), i32({G, C}), i32({1}), i32({nle})};
  // The derived layout's flags live with the routing (the handle owns the allocation): notify, and
  // a copy-engine dispatch's host, read them after this function returns.
  if (shape.derive_layout)
    layouts.push_back(Tensor::contiguous(nullptr, DType::kBool, {shape.num_tokens, G}));
  std::vector<DeviceTensor> routing =
      DeviceTensor::empty_together(m.allocator, layouts, scope.alloc_stream());
  h.send_slot = routing[0];
  h.count_matrix = routing[1];
  h.recv_chunk_start = routing[2];
  h.recv_chunk_count = routing[3];
  h.num_recv_dev = routing[4];
  h.num_recv_tokens_per_expert = routing[5];
  h.num_local_experts = nle;
  h.mask_changes = m.mask_changes;
  scope.allocations_ready();

  HtNotifyArgs n;
  n.view = m.view;
  n.signature = make_signature({.op = static_cast<std::int32_t>(OpId::kDispatch),
                                .hidden = shape.hidden,
                                .num_topk = shape.num_topk,
                                .num_blocks = a.config.num_sms,
                                .max_tokens = worst ? a.num_worst_tokens : 0,
                                .num_experts = shape.num_experts,
                                .flags = shape.fp8 ? kSigFp8 : 0});
  n.is_token_in_rank = shape.derive_layout ? data_of<const bool>(routing[6])
                                           : static_cast<const bool*>(a.is_token_in_rank.data);
  n.num_tokens_per_expert = shape.derive_layout
                                ? fused_expert_counts(m)
                                : static_cast<const std::int32_t*>(a.num_tokens_per_expert.data);
  n.num_tokens = shape.num_tokens;
  n.num_local_experts = nle;
  n.num_channels = C;
  n.tokens_per_channel = plan.tokens_per_channel;
  n.channel_of = FastDivisor(std::max(plan.tokens_per_channel, 1));
  n.by_domain_rank = FastDivisor(std::max(m.view.num_domain_ranks, 1));
  n.chunk_start = HtScratch::chunk_start(m.scratch.get());
  n.recv_copied = HtScratch::recv_copied(m.scratch.get());
  n.expert_alignment = a.expert_alignment;
  n.copy_chunks = plan.copy_chunks;
  n.send_slot = data_of<std::int32_t>(h.send_slot);
  n.count_matrix = data_of<std::int32_t>(h.count_matrix);
  n.recv_chunk_start = data_of<std::int32_t>(h.recv_chunk_start);
  n.recv_chunk_count = data_of<std::int32_t>(h.recv_chunk_count);
  n.num_recv = data_of<std::int32_t>(h.num_recv_dev);
  n.num_recv_per_expert = data_of<std::int32_t>(h.num_recv_tokens_per_expert);
  n.host_counts = worst ? nullptr : static_cast<std::uint64_t*>(m.host_counts.device());
  if (!worst) n.host_count_seq = ++m.notify_calls;
  n.notify_epoch = m.counter(Buffer::Impl::kNotifyEpoch);
  n.trace = m.notify_trace.bytes() > 0 ? m.notify_trace.as<std::uint64_t>() : nullptr;
  m.timer.host_step("notify-args");
  if (shape.derive_layout) {
    n.clear_counts = fused_expert_counts(m);
    const LayoutArgs l = fused_layout_args(m, a, shape, routing[6]);
    m.timer.begin(scope.comm(), kFusedPreambleTimerName);
    launch_ht_layout_notify(l, n, fused_scratch(m), scope.comm());
  } else {
    m.timer.begin(scope.comm(), "notify");
    launch_ht_notify(n, scope.comm());
  }
  m.timer.end(scope.comm());
  if (worst) {
    h.num_recv_tokens = -1;
    h.num_rows = a.num_worst_tokens;
  }
  return n.is_token_in_rank;
}

// Blocks until notify (marked on the scope) has stored this call's counts in mapped host memory:
// every word the host reads (the handle's copy-engine chunks included) carries this call's tag.
void wait_for_counts(Buffer::Impl& m, CommScope& scope, const DispatchHandle::State& h) {
  const HtHostCounts slots{h.num_local_experts, m.domains.ranks_per_domain};
  const auto* words = static_cast<const std::uint64_t*>(m.host_counts.host());
  const std::uint64_t seq = m.notify_calls;
  const int n = slots.ints(h.copy_chunks);
  scope.wait_until([&, next = 0]() mutable {
    const volatile std::uint64_t* w = words;
    while (next < n && host_count_is(w[next], seq)) ++next;
    return next == n;
  });
}

// The handshake, once notify has run (the caller waited for it): the host learns the received
// count, which sizes the outputs, and checks every rank's rows fit the region.
void receive_counts(Buffer::Impl& m, const HtDispatchLayout& region, DispatchHandle::State& h,
                    std::vector<int>& per_expert_host) {
  const int G = m.domains.ranks_per_domain;
  const int nle = h.num_local_experts;
  const auto* words = static_cast<const std::uint64_t*>(m.host_counts.host());
  const HtHostCounts slots{nle, G};
  auto counts = [&](int begin, int end, auto& out) {
    out.clear();
    for (int i = begin; i < end; ++i) out.push_back(host_count_value(words[i]));
  };
  h.num_recv_tokens = host_count_value(words[HtHostCounts::kTotal]);
  h.num_rows = h.num_recv_tokens;
  counts(slots.per_expert(), slots.count_matrix(), per_expert_host);
  counts(slots.count_matrix(), slots.send_prefix(), h.count_matrix_host);
  if (h.copy_chunks > 0) counts(slots.send_prefix(), slots.ints(h.copy_chunks), h.send_prefix_host);
  check_rows_fit(rows_received(h.count_matrix_host.data(), G), region.cap_rows, region.bytes_per_row(),
                 "dispatch");
}

// The dispatch kernel's arguments that do not depend on the outputs: inputs, plan, routing (the
// handle's device tensors, which exist once notify is queued or the handle is given).
HtDispatchArgs input_args(const Buffer::Impl& m, const DispatchArgs& a, const checks::DispatchShape& shape,
                          const HtDispatchPlan& plan, const HtDispatchLayout& region,
                          const DispatchHandle::State& h) {
  HtDispatchArgs d;
  d.view = m.view;
  d.region = region;
  d.x = static_cast<const std::uint8_t*>(a.x.data);
  d.x_scales = static_cast<const float*>(a.x_scales.data);
  d.scale_stride_token = shape.fp8 ? a.x_scales.stride[0] : 0;
  d.scale_stride_block = shape.fp8 ? a.x_scales.stride[1] : 0;
  d.topk_idx = a.topk_idx.data;
  d.topk_weights = static_cast<const float*>(a.topk_weights.data);
  d.num_tokens = shape.num_tokens;
  d.num_local_experts = h.num_local_experts;
  d.num_senders = plan.num_senders;
  d.phased = true;
  d.outputs_in_region = a.zero_copy;
  d.num_channels = plan.num_channels;
  d.tokens_per_channel = plan.tokens_per_channel;
  d.recv_copied = HtScratch::recv_copied(m.scratch.get());
  d.send_slot = data_of<std::int32_t>(h.send_slot);
  d.count_matrix = data_of<std::int32_t>(h.count_matrix);
  d.recv_chunk_start = data_of<std::int32_t>(h.recv_chunk_start);
  d.recv_chunk_count = data_of<std::int32_t>(h.recv_chunk_count);
  d.num_recv = data_of<std::int32_t>(h.num_recv_dev);
  return d;
}

// Where the kernel writes, and how many rows (0 when launched before the host knows the count:
// the kernel reads only worst-case mode's).
void set_outputs(HtDispatchArgs& d, const OutputPointers& dst, const checks::DispatchShape& shape,
                 std::int64_t num_rows, bool worst) {
  d.num_rows = num_rows;
  d.num_worst = worst;
  d.recv_x = static_cast<std::uint8_t*>(dst.x);
  d.recv_scales = shape.fp8 ? static_cast<float*>(dst.scales) : nullptr;
  d.recv_topk_idx = shape.num_topk > 0 ? dst.topk : nullptr;
  d.recv_topk_weights = shape.num_topk > 0 ? static_cast<float*>(dst.weights) : nullptr;
  d.recv_src_idx = static_cast<std::int32_t*>(dst.src_idx);
}

// What one dispatch call decided before moving a row: its inputs' shape, the kernels' plan, the
// region's sections, and which path carries the rows.
struct DispatchPlanned {
  checks::DispatchShape shape;
  const DispatchHandle::State* cached = nullptr;  // the handle's state for a cached dispatch
  HtDispatchPlan plan;
  HtDispatchLayout region;
  // Zero-copy outputs live at fixed places in the region, so the kernel need not wait for the host
  // to learn the received count: it is launched right after notify, and the handshake overlaps it
  // (the kernel bounds itself by the count matrix, ht_guard.cuh). Not a copy-engine dispatch: its
  // copies are sized by the host's counts.
  bool launch_early = false;
};

// Checks the call and plans it; nothing is launched.
DispatchPlanned plan_dispatch(const Buffer::Impl& m, const DispatchArgs& a) {
  DispatchPlanned p;
  p.shape = checks::check_dispatch_args(a, m.num_ranks());
  checks::check_inputs_outside_region(a, m.region.get(), m.region.bytes());
  p.cached = a.handle != nullptr ? &handle_state(*a.handle) : nullptr;
  if (p.cached != nullptr) check_handle_mask(*p.cached, m.mask_changes, "cached dispatch");
  // The copy engine needs the host to know the counts: not in worst-case mode. A cached dispatch
  // moves rows as the handle's dispatch did (its channels are laid out for that).
  const int copy_chunks = p.cached != nullptr    ? p.cached->copy_chunks
                          : a.num_worst_tokens > 0 ? 0
                                                   : m.ht_tuning.dispatch_copy_chunks;
  p.plan = plan_ht_dispatch(a.config.num_sms, m.num_sms, p.shape.num_tokens,
                            p.cached != nullptr ? p.cached->num_channels : 0, copy_chunks);
  p.region = HtDispatchLayout::make(static_cast<std::size_t>(m.options.num_nvl_bytes), p.shape.row_bytes,
                                    p.shape.num_scales, p.shape.num_topk, p.shape.idx_bytes);
  if (a.num_worst_tokens > 0 && p.cached == nullptr)
    check_rows_fit({a.num_worst_tokens}, p.region.cap_rows, p.region.bytes_per_row(),
                   "dispatch (num_worst_tokens)");
  // A handle's rows with this call's row size (another hidden size or dtype than its dispatch's):
  // refused before any launch (the copy engine would copy them past the region).
  const int G = m.domains.ranks_per_domain;
  if (p.cached != nullptr && p.cached->count_matrix_host.size() == static_cast<std::size_t>(G) * G)
    check_rows_fit(rows_received(p.cached->count_matrix_host.data(), G), p.region.cap_rows,
                   p.region.bytes_per_row(), "cached dispatch");
  p.launch_early = a.zero_copy && p.cached == nullptr && a.num_worst_tokens <= 0 && p.plan.copy_chunks == 0;
  return p;
}

// The host's side of the handshake (launch_notify marked it): waits for the counts and takes
// them into the handle. On a refusal (rows that do not fit), what was already launched saw the same
// counts and stopped before writing; its report of that is this very error, cleared once it is done.
void learn_counts(Buffer::Impl& m, CommScope& scope, const HtDispatchLayout& region, DispatchHandle::State& h,
                  std::vector<int>& per_expert_host, bool launched) {
  wait_for_counts(m, scope, h);
  m.timer.host_step("counts-seen");
  try {
    receive_counts(m, region, h, per_expert_host);
  } catch (const Error&) {
    if (launched) {
      EPCOMM_CUDA_CHECK(cudaStreamSynchronize(scope.comm()));
      m.clear_status(StatusCode::kRegionTooSmall);
    }
    throw;
  }
}

// A dispatch given topk_idx alone that the fused launch cannot take (several domains, more than 64
// ranks or kFusedLayoutMaxExperts experts): get_dispatch_layout, then the dispatch with its
// outputs. The layout's outputs are allocated on the communication stream (so freed there, after
// the kernels that read them) and its completion is the dispatch's previous_event.
DispatchResult dispatch_after_layout(Buffer& b, const DispatchArgs& a, const CallOptions& o) {
  CallOptions layout_options = o;
  layout_options.async_finish = true;
  layout_options.allocate_on_comm_stream = true;
  const DispatchLayout layout = b.get_dispatch_layout(a.topk_idx, a.num_experts, layout_options);
  DispatchArgs with_layout = a;
  with_layout.num_tokens_per_rank = layout.num_tokens_per_rank;
  with_layout.is_token_in_rank = layout.is_token_in_rank;
  with_layout.num_tokens_per_expert = layout.num_tokens_per_expert;
  CallOptions dispatch_options = o;
  dispatch_options.previous_event = layout.event;
  return b.dispatch(with_layout, dispatch_options);
}

}  // namespace

// The path of one call: plan; route (notify, or a cached handle's routing); learn the received
// count on the host (unless worst-case or cached, or after the launch when zero-copy); outputs
// (fresh tensors, or the region's rows); move the rows (the copy engine's packed chunks, or SM
// stores into the peers' regions); finish on the caller's stream.
DispatchResult Buffer::dispatch(const DispatchArgs& a, const CallOptions& options) {
  check_status();
  Impl& m = *impl_;
  checks::require_high_throughput_buffer(m.ll != nullptr, "dispatch");
  if (m.md) {
    if (checks::derives_layout(a)) {
      (void)checks::check_dispatch_args(a, m.num_ranks());  // its errors name the arguments first
      return dispatch_after_layout(*this, a, options);
    }
    return md_dispatch(m, a, options);  // internode/md_dispatch_op.cpp
  }
  const DispatchPlanned p = plan_dispatch(m, a);
  if (p.shape.derive_layout &&
      !can_fuse_layout_notify(m.num_ranks(), m.domains.ranks_per_domain, p.shape.num_experts,
                              p.shape.num_topk, p.shape.num_tokens))
    return dispatch_after_layout(*this, a, options);
  const bool cached = p.cached != nullptr;
  const bool worst = a.num_worst_tokens > 0;
  const int G = m.domains.ranks_per_domain;

  CommScope scope(m, options);
  DispatchResult out;
  // The new handle's state, filled below and frozen into out.handle on return.
  auto state = cached ? std::make_shared<DispatchHandle::State>(*p.cached)
                      : std::make_shared<DispatchHandle::State>();
  DispatchHandle::State& h = *state;
  const bool* token_in_rank = nullptr;  // notify's flags (none for a cached dispatch)
  if (cached) {
    m.timer.begin(scope.comm(), "prepare");
    const CallSignature sig = make_signature({.op = static_cast<std::int32_t>(OpId::kDispatch),
                                              .hidden = p.shape.hidden,
                                              .num_topk = p.shape.num_topk,
                                              // the handle's sender blocks: a larger num_sms leaves the rest idle
                                              .num_blocks = p.plan.num_senders,
                                              .flags = (p.shape.fp8 ? kSigFp8 : 0) | kSigCached});
    launch_ht_prepare(m.view, p.plan.num_channels, HtScratch::recv_copied(m.scratch.get()), OpId::kDispatch,
                      sig, Launch::kOrdinary, scope.comm());
    m.timer.end(scope.comm());
  } else {
    h.num_ranks = m.num_ranks();
    h.num_channels = p.plan.num_channels;
    h.copy_chunks = p.plan.copy_chunks;
    h.num_tokens = p.shape.num_tokens;
    h.expert_alignment = a.expert_alignment;
    token_in_rank = launch_notify(m, a, p.shape, p.plan, scope, h);
    if (!worst) scope.mark();
  }
  HtDispatchArgs d = input_args(m, a, p.shape, p.plan, p.region, h);

  // The copy engine's packs need only the device's counts: they run during the handshake when
  // staging for the worst case is small enough; otherwise, and for a cached dispatch (no
  // handshake), once the host knows the exact size below. Straight copies need the routing as the
  // host can read it: not for a cached dispatch.
  std::optional<CopyEngineDispatch> copy_engine;
  const bool* token_ranks = m.ht_tuning.dispatch_straight > 0 ? token_in_rank : nullptr;
  auto start_copy_engine = [&](std::int64_t staged_rows) {
    copy_engine.emplace(m, p.plan, staged_rows, p.region.row_bytes, token_ranks, m.ht_tuning.dispatch_straight,
                        scope.comm());
    copy_engine->pack(d);
  };
  const std::int64_t early_rows =
      early_staging_rows(p.shape.num_tokens, G, p.region.row_bytes, m.ht_tuning.dispatch_early_staging_bytes);
  if (p.plan.copy_chunks > 0 && !cached && early_rows >= 0) start_copy_engine(early_rows);
  if (!cached && !worst && !p.launch_early) {
    m.timer.host_step("notify-queued");
    learn_counts(m, scope, p.region, h, out.num_recv_tokens_per_expert, copy_engine.has_value());
  }
  if (p.plan.copy_chunks > 0 && !copy_engine)
    start_copy_engine(first_staged_row(h.count_matrix_host.data(), G, m.view.domain_rank, G));

  const OutputPointers dst = a.zero_copy ? region_pointers(m.region.get(), p.region)
                                         : allocate_outputs(m, a, p.shape, scope, out, h);
  set_outputs(d, dst, p.shape, p.launch_early ? 0 : h.num_rows, !p.launch_early && h.num_recv_tokens < 0);
  m.timer.host_step("dispatch-args");
  if (copy_engine) {
    copy_engine->finish(d, h, a.zero_copy ? nullptr : scope.alloc_stream(), scope.caller());
  } else {
    m.timer.begin(scope.comm(), "dispatch");
    launch_ht_dispatch(d, p.plan.num_blocks, cached ? Launch::kOrdinary : Launch::kPdl, scope.comm());
    m.timer.end(scope.comm());
  }
  m.timer.host_step("dispatch-queued");
  if (p.launch_early) learn_counts(m, scope, p.region, h, out.num_recv_tokens_per_expert, /*launched=*/true);
  if (a.zero_copy) region_views(a, p.shape, dst, out, h);
  out.handle = HandleAccess::make(std::move(state));
  out.event = scope.finish();
  m.timer.host_step("returned");
  return out;
}

}  // namespace epcomm
