// epcomm's own high-throughput dispatch and combine as benchmark ops, one set per SM budget.
// A dispatch call is timed whole: layout, notify (count exchange and the one host wait) and the
// data kernel, i.e. what a caller waits for. It is a dispatch given topk_idx alone (layout and
// notify in one launch), or with --split-layout get_dispatch_layout and then dispatch. Rows "epcomm-zc": the
// same call with zero-copy outputs (DispatchArgs::zero_copy: views of the region, no copy-out). Dispatch also
// runs with the rows moved the other way (SM stores or copy engine, bench/variants.hpp), combine under each
// schedule of its kernel (phased or overlapped, push or pull).
//
// The checked call (bench/runner.hpp): outputs the call allocates come poisoned from the Session's
// allocator; a zero-copy row first makes one untimed call on the check inputs to learn where its
// views lie in the region, poisons those rows, and its check requires the checked call's views to
// be exactly those rows.
//
// Every whole dispatch row also reports `preamble_us` (layout plus notify, device time, in the form
// the row times) and `preamble_split_us` (the two-call form) from a separate pass with the Buffer's
// kernel timing on, after the timed calls; the pass alternates the two forms call by call.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_op.hpp"
#include "bench/compare.hpp"
#include "bench/cuda.hpp"
#include "bench/ht_check.hpp"
#include "bench/ll_trace.hpp"
#include "bench/poison_device.hpp"
#include "bench/preamble.hpp"
#include "bench/stats.hpp"
#include "bench/stream_hold.hpp"
#include "bench/variants.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/multi_domain.hpp"

namespace epcomm::bench {

namespace {

template <typename T>
std::vector<T> to_host(const DeviceTensor& t) {
  std::vector<T> host(t.view().nbytes() / sizeof(T));
  if (!host.empty())
    BENCH_CUDA(cudaMemcpy(host.data(), t.data(), host.size() * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

HtDispatchOutputs download(const DispatchResult& r) {
  HtDispatchOutputs h;
  h.num_recv_tokens = r.handle.num_recv_tokens();
  h.recv_x = to_host<std::uint8_t>(r.recv_x);
  h.recv_x_scales = to_host<float>(r.recv_x_scales);
  h.recv_topk_idx = to_host<std::int64_t>(r.recv_topk_idx);
  h.recv_topk_weights = to_host<float>(r.recv_topk_weights);
  return h;
}

// The views a zero-copy dispatch returns into the region; undefined ones included, so two results
// compare position by position.
std::vector<Tensor> region_views(const DispatchResult& r) {
  return {r.recv_x.view(), r.recv_x_scales.view(), r.recv_topk_idx.view(), r.recv_topk_weights.view()};
}

bool same_views(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].data != b[i].data || a[i].nbytes() != b[i].nbytes()) return false;
  return true;
}

// The Buffer's transfer paths replaced for one call (benchmark variants in one run), restored after.
class TuningOverride {
 public:
  TuningOverride(Buffer& buffer, const CombineSchedule& schedule)
      : buffer_(buffer), saved_(buffer.ht_options()) {
    HtOptions o = saved_;
    o.combine = static_cast<CombineTransfer>(schedule.pull);
    o.combine_copy_chunks = schedule.copy_chunks;
    buffer.set_ht_options(o);
  }
  TuningOverride(Buffer& buffer, const DispatchVariant& variant)
      : buffer_(buffer), saved_(buffer.ht_options()) {
    HtOptions o = saved_;
    o.dispatch_copy_chunks = variant.copy_chunks;
    buffer.set_ht_options(o);
  }
  ~TuningOverride() { buffer_.set_ht_options(saved_); }
  TuningOverride(const TuningOverride&) = delete;
  TuningOverride& operator=(const TuningOverride&) = delete;

 private:
  Buffer& buffer_;
  HtOptions saved_;
};

// The Buffer's kernel timing on for a scope (a separate measuring pass), as it was after.
class KernelTimingOn {
 public:
  explicit KernelTimingOn(Buffer& buffer) : buffer_(buffer), was_on_(buffer.kernel_timing()) {
    buffer.set_kernel_timing(true);
  }
  ~KernelTimingOn() { buffer_.set_kernel_timing(was_on_); }
  KernelTimingOn(const KernelTimingOn&) = delete;
  KernelTimingOn& operator=(const KernelTimingOn&) = delete;

 private:
  Buffer& buffer_;
  bool was_on_;
};

// One Buffer for the workload and the last results of each op.
struct EpcommHt {
  std::unique_ptr<Buffer> buffer;
  Tensor x_bf16, x_fp8, scales, topk_idx, topk_weights;
  int num_experts = 0;
  bool split_layout = false;  // --split-layout (Session::split_layout)
  DispatchResult bf16, fp8, cached, zero_copy;
  CombineResult combined;
  int rank = 0;

  // The zero-copy views poisoned before the checked call (see make_epcomm_ht_ops).
  std::vector<Tensor> poisoned_views;

  bool check_combine(const ExpectedHt& e) {
    buffer->check_status();
    const HtCombineOutputs got{to_host<std::uint16_t>(combined.x), to_host<float>(combined.topk_weights)};
    return report_verdict(check_ht_combine(got, e, /*with_topk_weights=*/true, "epcomm"), rank);
  }

  // Where the last whole dispatch of each kind keeps its result.
  DispatchResult& result(bool fp8_payload, bool zero_copy_outputs) {
    return zero_copy_outputs ? zero_copy : fp8_payload ? fp8 : bf16;
  }

  // Prints where the last call's time went (EPCOMM_KERNEL_TIMING=1): the layout call before a whole
  // dispatch, then the operation's kernels, the idle gaps before them, and the host's steps.
  void print_timeline(const std::string& row, bool after_layout) {
    std::string layout;
    if (after_layout) {
      float ms = 0.0f;
      BENCH_CUDA(cudaEventSynchronize(layout_end->get()));
      BENCH_CUDA(cudaEventElapsedTime(&ms, layout_start->get(), layout_end->get()));
      char text[64];
      std::snprintf(text, sizeof text, "layout call %.1f us, then ", 1000.0 * ms);
      layout = text;
    }
    std::printf("# timeline rank %d %s (last call): %s%s\n", rank, row.c_str(), layout.c_str(),
                buffer->last_call_timeline().c_str());
  }

  // The last call's kernel time; only offered when EPCOMM_KERNEL_TIMING=1 (see timing below).
  double kernel_us() { return buffer->last_kernel_us(); }

  // With EPCOMM_KERNEL_TIMING=1: events around the layout call of the last whole dispatch.
  std::unique_ptr<Event> layout_start, layout_end;

  DispatchResult dispatch(bool fp8_payload, int num_sms, cudaStream_t stream, bool zero_copy = false) {
    if (!split_layout) return dispatch_from(nullptr, fp8_payload, num_sms, stream, zero_copy);
    if (layout_start) layout_start->record(stream);
    const DispatchLayout layout = get_layout(stream);
    if (layout_end) layout_end->record(stream);
    return dispatch_from(&layout, fp8_payload, num_sms, stream, zero_copy);
  }

  DispatchLayout get_layout(cudaStream_t stream) {
    return buffer->get_dispatch_layout(topk_idx, num_experts, {.stream = stream});
  }

  // With `layout`: its tensors; without: topk_idx alone (the Buffer derives the layout).
  DispatchResult dispatch_from(const DispatchLayout* layout, bool fp8_payload, int num_sms,
                               cudaStream_t stream, bool zero_copy) {
    DispatchArgs a;
    a.x = fp8_payload ? x_fp8 : x_bf16;
    if (fp8_payload) a.x_scales = scales;
    a.topk_idx = topk_idx;
    a.topk_weights = topk_weights;
    if (layout != nullptr) {
      a.num_tokens_per_rank = layout->num_tokens_per_rank;
      a.is_token_in_rank = layout->is_token_in_rank;
      a.num_tokens_per_expert = layout->num_tokens_per_expert;
    } else {
      a.num_experts = num_experts;
    }
    a.config.num_sms = num_sms;
    a.zero_copy = zero_copy;
    return buffer->dispatch(a, {.stream = stream});
  }

  bool check_dispatch(const DispatchResult& got, const ref::HtRankOutput& want, bool fp8_payload,
                      bool zero_copy_outputs) {
    buffer->check_status();
    Verdict v = check_ht_dispatch(download(got), want, {.impl = "epcomm", .fp8 = fp8_payload});
    if (zero_copy_outputs && !same_views(region_views(got), poisoned_views))
      v.fail("epcomm-zc: the checked call's views are not the region rows poisoned before it");
    return report_verdict(v, rank);
  }

  // After the timed calls, a pass of its own (its events and waits stay out of time_us): `calls`
  // whole dispatches of each form with the Buffer's kernel timing on, alternated (the two-call
  // form, then topk_idx alone), the kernels of each call read after it; this rank's median
  // preamble of each (bench/preamble.hpp). Each call is queued behind a hold of `hold_us` on the
  // stream (bench/stream_hold.hpp), so its kernels' events time the device, not the host's launches
  // onto an idle stream.
  // With EPCOMM_HT_TRACE=1 notify's phases are printed labelled `row`, each form's apart: the pass
  // then runs the two-call form's calls first, its trace printed, then the fused form's.
  PreambleTimes measure_preamble(bool fp8_payload, int num_sms, bool zero_copy, cudaStream_t stream,
                                 int calls, double hold_us, const std::string& row) {
    const KernelTimingOn timing(*buffer);
    buffer->notify_trace(/*clear=*/true);  // the timed calls' stamps: not this pass's
    std::vector<double> split, fused;
    std::optional<double> fused_span;
    auto split_call = [&] {
      hold_stream(stream, hold_us);
      const DispatchLayout layout = get_layout(stream);
      const std::vector<KernelTime> layout_kernels = buffer->last_kernel_times();
      hold_stream(stream, hold_us);
      result(fp8_payload, zero_copy) = dispatch_from(&layout, fp8_payload, num_sms, stream, zero_copy);
      if (const std::optional<double> us = preamble_us(layout_kernels, buffer->last_kernel_times()))
        split.push_back(*us);
    };
    auto fused_call = [&] {
      hold_stream(stream, hold_us);
      result(fp8_payload, zero_copy) = dispatch_from(nullptr, fp8_payload, num_sms, stream, zero_copy);
      if (const std::optional<double> us = fused_preamble_us(buffer->last_kernel_times()))
        fused.push_back(*us);
    };
    if (std::getenv("EPCOMM_HT_TRACE") != nullptr) {
      for (int i = 0; i < calls; ++i) split_call();
      BENCH_CUDA(cudaStreamSynchronize(stream));
      print_notify_trace(*buffer, row + " [notify, preamble pass, two-call form]", rank);
      for (int i = 0; i < calls; ++i) fused_call();
      BENCH_CUDA(cudaStreamSynchronize(stream));
      fused_span = print_notify_trace(*buffer, row + " [notify, preamble pass, fused launch]", rank);
    } else {
      for (int i = 0; i < calls; ++i) {
        split_call();
        fused_call();
      }
      BENCH_CUDA(cudaStreamSynchronize(stream));
    }
    // A form whose kernel went unnamed in some call reports nothing.
    const auto median_of = [calls](std::vector<double>& v) -> std::optional<double> {
      if (v.size() != static_cast<std::size_t>(calls)) return std::nullopt;
      return median(std::move(v));
    };
    PreambleTimes t;
    t.split_us = median_of(split);
    t.us = split_layout ? t.split_us : median_of(fused);
    if (!split_layout) t.span_us = fused_span;
    return t;
  }

  // Untimed, before a zero-copy checked call: one call to learn where its views lie (the same
  // rows for the same routing), then the poison over them.
  void poison_zero_copy(bool fp8_payload, int num_sms, cudaStream_t stream) {
    DispatchResult& r = result(fp8_payload, /*zero_copy_outputs=*/true);
    r = dispatch(fp8_payload, num_sms, stream, /*zero_copy=*/true);
    poisoned_views = region_views(r);
    for (const Tensor& view : poisoned_views) poison_view(view, stream);
  }
};

// The workload as the multi-domain size hints see it (G = the session's ranks per domain).
MultiDomainShape md_shape(const BenchContext& context, bool fp8) {
  const Workload& w = context.workload;
  return MultiDomainShape{.num_tokens = w.num_tokens,
                          .hidden = w.hidden,
                          .num_topk = w.num_topk,
                          .num_experts = w.num_experts,
                          .num_ranks = context.session.num_ranks(),
                          .ranks_per_domain = context.session.ranks_per_domain(),
                          .fp8 = fp8};
}

// The Buffer of the workload. One domain: room for the worst case, every token of every rank
// arriving here, with all its metadata. Several (--ranks-per-domain): the public hints, the NVLink
// region for any routing (R x T rows, equal on every rank), the symmetric one for the largest SM
// budget and payload of the run.
BufferOptions ht_buffer_options(const BenchContext& context) {
  const Workload& w = context.workload;
  const int R = context.session.num_ranks();
  BufferOptions options{.allocator = context.session.allocator(),
                        .peer_telemetry = context.session.telemetry()};
  if (context.session.ranks_per_domain() == 0) {
    const std::int64_t row = w.hidden * 2 + 4 * w.num_scales() + 12 * w.num_topk + 4;
    options.num_nvl_bytes = R * w.num_tokens * row + (std::int64_t{8} << 20);
    return options;
  }
  options.ranks_per_domain = context.session.ranks_per_domain();
  for (const bool fp8 : {false, true}) {
    const MultiDomainShape shape = md_shape(context, fp8);
    options.num_nvl_bytes = std::max(options.num_nvl_bytes, multi_domain_nvl_bytes_hint(shape));
    for (const int sms : context.session.sms())
      options.num_rdma_bytes = std::max(options.num_rdma_bytes, multi_domain_rdma_bytes_hint(shape, sms));
  }
  return options;
}

// This rank's bytes through its NIC and over NVLink in one call of a multi-domain run; nothing in
// one domain.
std::optional<MdBytes> md_bytes_of(const BenchContext& context, bool fp8, MdOpKind op) {
  if (!context.md_rows) return std::nullopt;
  return md_bytes(*context.md_rows, multi_domain_row_bytes(md_shape(context, fp8)), op);
}

std::string row_name(const BenchOp& op) {
  return op.impl + " " + op.op + " " + op.dtype + " " + std::to_string(op.num_sms) + " SMs";
}

}  // namespace

std::vector<BenchOp> make_epcomm_ht_ops(BenchContext& context) {
  const Workload& w = context.workload;
  if (w.mode != Mode::kHighThroughput) return {};
  const DeviceInputs& in = context.inputs;
  auto state = std::make_shared<EpcommHt>();
  state->rank = context.session.rank();
  state->num_experts = w.num_experts;
  state->split_layout = context.session.split_layout();
  std::shared_ptr<Bootstrap> bootstrap(&context.session.bootstrap(), [](Bootstrap*) {});  // not owned
  state->buffer = std::make_unique<Buffer>(bootstrap, ht_buffer_options(context));
  const std::int64_t T = in.num_tokens;
  state->x_bf16 = Tensor::contiguous(in.live.x_bf16.get(), DType::kBF16, {T, in.hidden});
  state->x_fp8 = Tensor::contiguous(in.live.x_fp8.get(), DType::kFP8E4M3, {T, in.hidden});
  state->scales = Tensor::strided(in.live.scales.get(), DType::kF32, {T, in.num_scales},
                                  {in.scale_stride_token, in.scale_stride_block});
  state->topk_idx = Tensor::contiguous(in.live.topk_idx.get(), DType::kI64, {T, in.num_topk});
  state->topk_weights = Tensor::contiguous(in.live.topk_weights.get(), DType::kF32, {T, in.num_topk});

  const bool timing = state->buffer->kernel_timing();  // EPCOMM_KERNEL_TIMING=1
  if (timing) {
    state->layout_start = std::make_unique<Event>(/*timing=*/true);
    state->layout_end = std::make_unique<Event>(/*timing=*/true);
  }
  const Traffic traffic = context.traffic;
  const std::function<const ExpectedHt&()> expected = context.expected_ht;
  const auto bf16_row = static_cast<double>(row_bytes(w, Dtype::kBf16));
  std::vector<BenchOp> ops;
  // NOTE: the transfer options (copy engine, pull) do not apply to a multi-domain Buffer
  // (docs/multi_domain.md): its rows are the Buffer's own way only.
  const bool multi_domain = context.md_rows.has_value();
  std::vector<DispatchVariant> dispatch_ways =
      dispatch_variants(state->buffer->ht_options().dispatch_copy_chunks, context.session.ce_chunks());
  if (multi_domain) dispatch_ways.resize(1);
  for (const int sms : context.session.sms()) {
    // The whole dispatch, then the same with zero-copy outputs (views of the region: no copy-out),
    // each way of moving the rows.
    for (const DispatchVariant& way : dispatch_ways) {
      for (const bool zero_copy : {false, true}) {
        for (const Dtype dtype : {Dtype::kBf16, Dtype::kFp8}) {
          const bool fp8 = dtype == Dtype::kFp8;
          const auto row_b = static_cast<double>(row_bytes(w, dtype));
          BenchOp op;
          op.impl = zero_copy ? way.impl + "-zc" : way.impl;
          op.op = "dispatch";
          op.dtype = to_string(dtype);
          op.num_sms = sms;
          op.recv_bytes = static_cast<double>(traffic.recv_rows) * row_b;
          op.wire_bytes = static_cast<double>(traffic.send_rows_remote) * row_b;
          op.md_bytes = md_bytes_of(context, fp8, MdOpKind::kDispatch);
          op.run = [state, fp8, zero_copy, sms, way](cudaStream_t s) {
            const TuningOverride scoped(*state->buffer, way);
            state->result(fp8, zero_copy) = state->dispatch(fp8, sms, s, zero_copy);
          };
          if (timing) {
            op.kernel_us = [state] { return state->kernel_us(); };
            op.after = [state, row = row_name(op)] {
              state->print_timeline(row, /*after_layout=*/state->split_layout);
            };
          }
          op.preamble_us = [state, fp8, zero_copy, sms, way, row = row_name(op)](cudaStream_t s, int calls,
                                                                                 double hold_us) {
            const TuningOverride scoped(*state->buffer, way);
            return state->measure_preamble(fp8, sms, zero_copy, s, calls, hold_us, row);
          };
          if (zero_copy)
            op.poison = [state, fp8, sms, way](cudaStream_t s) {
              const TuningOverride scoped(*state->buffer, way);
              state->poison_zero_copy(fp8, sms, s);
            };
          op.check = [state, fp8, zero_copy, expected] {
            return state->check_dispatch(state->result(fp8, zero_copy),
                                         fp8 ? expected().dispatch_fp8 : expected().dispatch_bf16, fp8,
                                         zero_copy);
          };
          ops.push_back(std::move(op));
        }
      }
    }
    for (const DispatchVariant& way : dispatch_ways) {
      // The data path alone: a cached dispatch (no layout, no count exchange, no host wait), from
      // a handle made the same way (a cached dispatch moves rows as its handle's dispatch did).
      BenchOp op;
      op.impl = way.impl + "-cached";
      op.op = "dispatch";
      op.dtype = "bf16";
      op.num_sms = sms;
      op.recv_bytes = static_cast<double>(traffic.recv_rows) * bf16_row;
      op.wire_bytes = static_cast<double>(traffic.send_rows_remote) * bf16_row;
      op.md_bytes = md_bytes_of(context, /*fp8=*/false, MdOpKind::kDispatch);
      op.setup = [state, sms, way](cudaStream_t s) {
        const TuningOverride scoped(*state->buffer, way);
        state->bf16 = state->dispatch(false, sms, s);
      };
      op.run = [state, sms](cudaStream_t s) {
        DispatchArgs a;
        a.x = state->x_bf16;
        a.handle = &state->bf16.handle;
        a.config.num_sms = sms;
        state->cached = state->buffer->dispatch(a, {.stream = s});
      };
      if (timing) {
        op.kernel_us = [state] { return state->kernel_us(); };
        op.after = [state, row = row_name(op)] { state->print_timeline(row, /*after_layout=*/false); };
      }
      op.check = [state, expected] {
        state->buffer->check_status();
        Verdict v;
        v.add(compare_bytes("epcomm cached recv_x", expected().dispatch_bf16.recv_x,
                            to_host<std::uint8_t>(state->cached.recv_x)));
        return report_verdict(v, state->rank);
      };
      ops.push_back(std::move(op));
    }
    // Combine under each schedule of the kernel in one run (same data, so the ratios compare):
    // the Buffer's options (HtOptions::combine, combine_copy_chunks) on row "epcomm", then the
    // other schedules as "epcomm-<variant>" (bench/variants.hpp).
    const HtOptions own = state->buffer->ht_options();
    std::vector<CombineVariant> combine_ways =
        combine_variants({static_cast<int>(own.combine), own.combine_copy_chunks});
    if (multi_domain) combine_ways.resize(1);
    for (const CombineVariant& variant : combine_ways) {
      BenchOp op;
      op.impl = variant.impl;
      op.op = "combine";
      op.dtype = "bf16";
      op.num_sms = sms;
      op.recv_bytes = static_cast<double>(traffic.recv_rows) * bf16_row;
      op.wire_bytes =
          static_cast<double>(traffic.recv_rows_remote) * bf16_row;  // rows go back to their sources
      op.md_bytes = md_bytes_of(context, /*fp8=*/false, MdOpKind::kCombine);
      op.setup = [state, sms](cudaStream_t s) { state->bf16 = state->dispatch(false, sms, s); };
      op.run = [state, sms, schedule = variant.schedule](cudaStream_t s) {
        CombineArgs c;
        c.x = state->bf16.recv_x;
        c.topk_weights = state->bf16.recv_topk_weights;
        c.handle = &state->bf16.handle;
        c.config.num_sms = sms;
        const TuningOverride scoped(*state->buffer, schedule);
        state->combined = state->buffer->combine(c, {.stream = s});
      };
      if (timing) {
        op.kernel_us = [state] { return state->kernel_us(); };
        op.after = [state, row = row_name(op)] { state->print_timeline(row, /*after_layout=*/false); };
      }
      op.check = [state, expected] { return state->check_combine(expected()); };
      ops.push_back(std::move(op));
    }
  }
  if (context.session.telemetry()) {
    for (BenchOp& op : ops)
      op.telemetry = [state](bool clear) { return state->buffer->peer_telemetry(clear); };
  }
  return ops;
}

}  // namespace epcomm::bench
