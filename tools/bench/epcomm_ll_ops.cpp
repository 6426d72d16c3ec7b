// epcomm's low-latency dispatch and combine as benchmark ops (workloads ll-dsv3, ll-small): one
// low-latency Buffer per workload variant. Rows (impl "epcomm", num_sms 0: LL kernels size their
// own grid):
//   dispatch fp8          one whole call, BF16 in, cast to FP8 in the kernel (docs/benchmark.md ll-dsv3)
//   combine bf16          one whole call on the outputs of one (untimed) dispatch
//   dispatch+combine fp8  an FP8 dispatch and a BF16 combine back to back
// Rows "epcomm-graph": the same dispatch / combine captured once in a CUDA graph and replayed
// (no host work between calls: the kernels' own latency, as in a decoding step's graph).
// Rows "epcomm-zc" and "epcomm-graph-zc", op "combine": the same combine with a zero-copy y
// (LlCombineOptions::zero_copy), y copied beforehand (untimed) into both halves of the Buffer's
// zero-copy y, where a model's expert GEMM would write it: with CUDA IPC the owners then pull their
// tokens' rows from the holders (EPCOMM_LL_PULL_COMBINE).
// Built with EPCOMM_WITH_NVSHMEM, the dispatch and combine rows run again on a Buffer whose peers
// are all reached through NVSHMEM (impl "epcomm-nvshmem", BufferOptions::ll_transport).
// Byte counts: dispatch receives one row per (token, expert) pair on this rank (Traffic.recv_pairs)
// of hidden + 4*hidden/128 bytes and sends each token once per destination rank other than its own
// (Traffic.send_rows_remote; the selection lists every holder also gets are not counted). Combine:
// logical recv_pairs BF16 rows (docs/benchmark.md: its dispatch's count); wire: one float32 partial sum per
// remote token received (Traffic.recv_rows_remote rows of hidden x 4 bytes), or, pulled (the -zc rows
// with CUDA IPC), one BF16 row per (token, expert) pair of this rank's held elsewhere
// (Traffic.send_pairs_remote).
//
// Split phases (return_recv_hook): the runner times each run() between two events on one stream,
// with nothing untimed between consecutive calls, and every send needs its receive before the send
// after next (at most two may await). So neither phase can be timed alone: a separate send or
// receive row would always include the other phase (or overlap it with the next call). They are
// reported as impl "epcomm-hook", ops "dispatch" (fp8) and "combine" (bf16): the send, then the
// receive at once; kernel_us is the sum of the two phases' medians measured with CUDA events
// inside the calls, and the split itself is printed as a note.
//
// The data check (bench/ll_check.hpp) compares every row of recv_x (FP8 bytes), every scale and
// recv_count with ref::ll_dispatch for this rank, and combine's output with the reference's sums.
// Before the checked call (bench/runner.hpp) the outputs are poisoned: the op's call is made twice,
// untimed, on the check inputs, and the poison written over the outputs both returned, i.e. both
// halves of the double-buffered outputs (a graph row's replays write its captured outputs only).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "bench/bench_op.hpp"
#include "bench/compare.hpp"
#include "bench/cuda.hpp"
#include "bench/ll_check.hpp"
#include "bench/ll_trace.hpp"
#include "bench/poison_device.hpp"
#include "bench/stats.hpp"
#include "epcomm/buffer.hpp"

namespace epcomm::bench {

namespace {

bool fail(int rank, const std::string& what) {
  std::fprintf(stderr, "epcomm-bench: rank %d: check failed: %s\n", rank, what.c_str());
  return false;
}

template <typename T>
std::vector<T> download(const void* device, std::size_t count) {
  std::vector<T> host(count);
  if (count != 0) BENCH_CUDA(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

// Per-phase CUDA events of split calls: before the send, after it, after the receive; a ring over
// the last kCalls calls (the default number of timed calls).
class PhaseClock {
 public:
  static constexpr int kCalls = 50;
  PhaseClock() {
    for (int i = 0; i < 3 * kCalls; ++i) events_.emplace_back(true);
  }
  void mark(int phase, cudaStream_t stream) {
    events_[static_cast<std::size_t>((calls_ % kCalls) * 3 + phase)].record(stream);
    if (phase == 2) ++calls_;
  }
  // Medians (us) of the send (0 -> 1) and receive (1 -> 2) phases; call after a synchronize.
  std::pair<double, double> medians() const {
    std::vector<double> send, recv;
    for (int i = 0; i < std::min<std::int64_t>(calls_, kCalls); ++i) {
      send.push_back(elapsed_us(3 * i, 3 * i + 1));
      recv.push_back(elapsed_us(3 * i + 1, 3 * i + 2));
    }
    if (send.empty()) return {0.0, 0.0};
    return {median(std::move(send)), median(std::move(recv))};
  }

 private:
  double elapsed_us(int from, int to) const {
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, events_[static_cast<std::size_t>(from)].get(),
                                    events_[static_cast<std::size_t>(to)].get()));
    return static_cast<double>(ms) * 1e3;
  }
  std::vector<Event> events_;
  std::int64_t calls_ = 0;
};

// One call captured in a CUDA graph and replayed: a replay costs the host ~2 us, so both ranks'
// streams stay full and the timing is the kernels' own, without per-call host work between them
// (as in decoding, where these calls live in captured graphs).
class CapturedCall {
 public:
  CapturedCall() = default;
  CapturedCall(const CapturedCall&) = delete;
  CapturedCall& operator=(const CapturedCall&) = delete;
  ~CapturedCall() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
  }
  void capture(const std::function<void(cudaStream_t)>& call, cudaStream_t stream) {
    if (exec_ != nullptr) BENCH_CUDA(cudaGraphExecDestroy(exec_));
    exec_ = nullptr;
    cudaGraph_t graph = nullptr;
    BENCH_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    call(stream);
    BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
    const cudaError_t status = cudaGraphInstantiate(&exec_, graph, 0);
    BENCH_CUDA(cudaGraphDestroy(graph));
    BENCH_CUDA(status);
  }
  void replay(cudaStream_t stream) const { BENCH_CUDA(cudaGraphLaunch(exec_, stream)); }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

// One low-latency Buffer for the workload variant, combine's input and the last results.
struct EpcommLl {
  Workload w;
  Bootstrap* bootstrap = nullptr;
  int R = 0, me = 0, nle = 0;
  std::int64_t cap = 0, S = 0;  // rows per local expert (R * T); scales per row
  std::unique_ptr<Buffer> buffer;
  Tensor x, topk_idx, topk_weights, y;
  DeviceBuffer y_memory;
  std::vector<std::int32_t> y_count, y_src;  // the dispatch layout y was written for
  std::vector<std::int64_t> y_ranges;
  LlDispatchResult d;
  LlCombineResult c;
  std::optional<ExpectedLl> expected;
  const DeviceInputs* inputs = nullptr;  // inputs->loaded: the set y is written for

  // Only the checked call is compared, so the reference is that of the check inputs.
  const ExpectedLl& want() {
    if (!expected) expected = compute_expected_ll(w, R, me, InputSet::kCheck);
    return *expected;
  }

  LlDispatchResult dispatch(bool hook, cudaStream_t s, PhaseClock* clock = nullptr) {
    if (clock) clock->mark(0, s);
    LlDispatchResult r =
        buffer->low_latency_dispatch(x, topk_idx, {.use_fp8 = true, .return_recv_hook = hook}, {.stream = s});
    if (clock) clock->mark(1, s);
    if (hook) r.receive();
    if (clock) clock->mark(2, s);
    return r;
  }

  // A zero-copy combine: y is read where the Buffer's next combine buffer is (write_y_zero_copy).
  LlCombineResult combine_zero_copy(const LlHandle& handle, cudaStream_t s) {
    const Tensor y_zc = buffer->get_next_low_latency_combine_buffer(handle);
    return buffer->low_latency_combine(y_zc, topk_idx, topk_weights, handle, {.zero_copy = true},
                                       {.stream = s});
  }

  // Untimed: dispatch_and_write_y, then y copied into both halves of the zero-copy y (an untimed
  // combine between the two copies moves to the other half; the next combine reads the first).
  void write_y_zero_copy(cudaStream_t s) {
    dispatch_and_write_y(s);
    for (int half = 0; half < 2; ++half) {
      const Tensor y_zc = buffer->get_next_low_latency_combine_buffer(d.handle);
      BENCH_CUDA(cudaMemcpyAsync(y_zc.data, y_memory.get(), y_memory.bytes(), cudaMemcpyDeviceToDevice, s));
      if (half == 0) c = combine_zero_copy(d.handle, s);
    }
    BENCH_CUDA(cudaStreamSynchronize(s));
    buffer->check_status();
  }

  LlCombineResult combine(const LlHandle& handle, bool hook, cudaStream_t s, PhaseClock* clock = nullptr) {
    if (clock) clock->mark(0, s);
    LlCombineResult r = buffer->low_latency_combine(y, topk_idx, topk_weights, handle,
                                                    {.return_recv_hook = hook}, {.stream = s});
    if (clock) clock->mark(1, s);
    if (hook) r.receive();
    if (clock) clock->mark(2, s);
    return r;
  }

  // Untimed: one dispatch into `d`, then y written in its layout (rows beyond recv_count stay zero).
  void dispatch_and_write_y(cudaStream_t s) {
    d = dispatch(false, s);
    BENCH_CUDA(cudaStreamSynchronize(s));
    buffer->check_status();
    y_count = download<std::int32_t>(d.recv_count.data, static_cast<std::size_t>(nle));
    y_ranges = download<std::int64_t>(d.layout_range.data, static_cast<std::size_t>(nle * R));
    y_src = download<std::int32_t>(d.src_info.data, static_cast<std::size_t>(nle * cap));
    const auto H = static_cast<std::size_t>(w.hidden);
    std::vector<std::uint16_t> rows;
    for (int e = 0; e < nle; ++e) {
      const auto n = static_cast<std::size_t>(std::clamp<std::int64_t>(y_count[e], 0, cap));
      rows.assign(n * H, 0);
      for (int s_rank = 0; s_rank < R; ++s_rank) {
        const std::int64_t range = y_ranges[static_cast<std::size_t>(e * R + s_rank)];
        for (std::int64_t i = range >> 32; i < (range >> 32) + (range & 0xffffffff); ++i) {
          if (i < 0 || i >= static_cast<std::int64_t>(n)) continue;  // the check reports it
          const std::int32_t t = y_src[static_cast<std::size_t>(e * cap + i)];
          const std::uint64_t key =
              y_key(w, R, static_cast<std::int64_t>(me) * nle + e, s_rank, t, inputs->loaded);
          for (std::size_t ch = 0; ch < H; ++ch)
            rows[static_cast<std::size_t>(i) * H + ch] = y_value(key + ch);
        }
      }
      if (n != 0)
        copy_to_device(static_cast<std::uint16_t*>(y_memory.get()) + static_cast<std::size_t>(e * cap) * H,
                       rows.data(), n * H * sizeof(std::uint16_t));
    }
  }

  HostLlDispatch download_dispatch(const LlDispatchResult& got) const {
    HostLlDispatch h;
    h.count = download<std::int32_t>(got.recv_count.data, static_cast<std::size_t>(nle));
    h.ranges = download<std::int64_t>(got.layout_range.data, static_cast<std::size_t>(nle * R));
    h.src = download<std::int32_t>(got.src_info.data, static_cast<std::size_t>(nle * cap));
    h.scales = download<float>(got.recv_scales.data, static_cast<std::size_t>(nle * S * cap));
    const auto H = static_cast<std::size_t>(w.hidden);
    for (int e = 0; e < nle; ++e)
      h.x.push_back(
          download<std::uint8_t>(got.recv_x.ptr<std::uint8_t>() + static_cast<std::size_t>(e * cap) * H,
                                 static_cast<std::size_t>(std::clamp<std::int64_t>(h.count[e], 0, cap)) * H));
    return h;
  }

  bool check_dispatch(const LlDispatchResult& got) {
    buffer->check_status();
    return report_verdict(check_ll_dispatch(download_dispatch(got), want().dispatch, R, cap, S, w.hidden),
                          me);
  }

  // The layout of the combine's dispatch must be the one y was written for (a fixed routing gives
  // one layout today; if that changed, y would no longer echo the right rows).
  bool check_same_layout(const LlDispatchResult& got) const {
    const HostLlDispatch h = download_dispatch(got);
    bool same = h.count == y_count && h.ranges == y_ranges;
    for (int e = 0; same && e < nle; ++e)
      same = std::equal(h.src.begin() + e * cap,
                        h.src.begin() + e * cap + std::clamp<std::int64_t>(h.count[e], 0, cap),
                        y_src.begin() + e * cap);
    return same || fail(me, "epcomm ll dispatch layout changed between calls with the same routing");
  }

  bool check_combine(const LlCombineResult& got) {
    buffer->check_status();
    const auto out = download<std::uint16_t>(got.out.data, static_cast<std::size_t>(got.out.numel()));
    Verdict v;
    v.add(compare_bf16("epcomm ll combine out", want().combine, out));
    return report_verdict(v, me);
  }
};

// The send/receive split of a hook row: printed (rank 0), summed into kernel_us. Collective.
std::function<double()> phase_split(std::shared_ptr<EpcommLl> st, std::shared_ptr<PhaseClock> clock,
                                    std::string what) {
  return [st, clock, what] {
    const auto [send, recv] = clock->medians();
    const double send_max = max_over_ranks(*st->bootstrap, send);
    const double recv_max = max_over_ranks(*st->bootstrap, recv);
    if (st->me == 0)
      std::printf(
          "# note: epcomm-hook %s, %lld tokens: send %.1f us + receive %.1f us (per-phase CUDA "
          "events in the last %d calls: medians, max over ranks)\n",
          what.c_str(), static_cast<long long>(st->w.num_tokens), send_max, recv_max, PhaseClock::kCalls);
    return send + recv;
  };
}

// EPCOMM_LL_TRACE=1: after each row, the phase timestamps of its launches (bench/ll_trace.hpp), and
// kernel_us from them where the row has no other kernel time.
std::vector<BenchOp> with_traces(std::vector<BenchOp> ops, const std::shared_ptr<EpcommLl>& st,
                                 std::int64_t tokens) {
  if (!ll_traced(*st->buffer)) return ops;
  for (BenchOp& o : ops) {
    const std::string label = o.impl + " " + o.op + " " + std::to_string(tokens) + " tokens";
    const bool dispatch = o.op != "combine", combine = o.op != "dispatch";
    // kernel_us from the device clock: the launches' median span (both kernels' for both ops).
    if (!o.kernel_us)
      o.kernel_us = [st, dispatch, combine] {
        return (dispatch ? ll_trace_span_us(*st->buffer, LlKernel::kDispatch) : 0.0) +
               (combine ? ll_trace_span_us(*st->buffer, LlKernel::kCombine) : 0.0);
      };
    o.after = [st, label, dispatch, combine] {
      if (dispatch) print_ll_trace(*st->buffer, LlKernel::kDispatch, label + " [dispatch kernel]", st->me);
      if (combine) print_ll_trace(*st->buffer, LlKernel::kCombine, label + " [combine kernel]", st->me);
    };
  }
  return ops;
}

// --telemetry: every row reads the Buffer's per-peer telemetry.
std::vector<BenchOp> with_telemetry(std::vector<BenchOp> ops, const std::shared_ptr<EpcommLl>& st, bool on) {
  if (!on) return ops;
  for (BenchOp& o : ops) o.telemetry = [st](bool clear) { return st->buffer->peer_telemetry(clear); };
  return ops;
}

// Every row's poison hook (see the file comment): two untimed calls, then the poison over the
// outputs of both, which are both halves of the double-buffered outputs the checked call may use.
std::vector<BenchOp> with_poison(std::vector<BenchOp> ops, const std::shared_ptr<EpcommLl>& st) {
  for (BenchOp& o : ops) {
    const bool dispatch = o.op != "combine", combine = o.op != "dispatch";
    o.poison = [st, run = o.run, dispatch, combine](cudaStream_t s) {
      std::vector<Tensor> outputs;
      for (int call = 0; call < 2; ++call) {
        run(s);
        if (dispatch)
          outputs.insert(outputs.end(), {st->d.recv_x, st->d.recv_scales, st->d.recv_count,
                                         st->d.layout_range, st->d.src_info});
        if (combine) outputs.push_back(st->c.out);
      }
      for (const Tensor& t : outputs) poison_view(t, s);
    };
  }
  return ops;
}

// The ops of one low-latency Buffer reaching its peers through `transport`. kAuto (CUDA IPC within
// the NVLink domain): every row above. kNvshmem (every peer through NVSHMEM puts and signals, the
// cross-domain path run over NVLink): the single-call rows, as impl "epcomm-nvshmem".
std::vector<BenchOp> make_ll_ops(BenchContext& context, LlTransport transport) {
  const Workload& w = context.workload;
  if (w.mode != Mode::kLowLatency) return {};
  const bool nvshmem = transport == LlTransport::kNvshmem;
  const DeviceInputs& in = context.inputs;
  auto st = std::make_shared<EpcommLl>();
  st->w = w;
  st->bootstrap = &context.session.bootstrap();
  st->R = context.session.num_ranks();
  st->me = context.session.rank();
  st->nle = w.num_experts / st->R;
  st->cap = st->R * w.num_tokens;
  st->S = w.num_scales();
  st->inputs = &context.inputs;
  const LowLatencyOptions ll{.max_tokens_per_rank = w.num_tokens,
                             .hidden = w.hidden,
                             .num_experts = w.num_experts,
                             .max_topk = w.num_topk};
  const std::int64_t bytes = ll_region_bytes_hint(w.num_tokens, w.hidden, st->R, w.num_experts, w.num_topk);
  std::shared_ptr<Bootstrap> bootstrap(st->bootstrap, [](Bootstrap*) {});  // not owned
  // NVSHMEM: the workspace comes from the symmetric heap; no NVLink region is needed.
  st->buffer = std::make_unique<Buffer>(bootstrap,
                                        BufferOptions{.num_nvl_bytes = nvshmem ? 0 : bytes,
                                                      .low_latency_mode = true,
                                                      .ll_transport = transport,
                                                      .peer_telemetry = context.session.telemetry()},
                                        ll);
  const std::int64_t T = in.num_tokens;
  st->x = Tensor::contiguous(in.live.x_bf16.get(), DType::kBF16, {T, in.hidden});
  st->topk_idx = Tensor::contiguous(in.live.topk_idx.get(), DType::kI64, {T, in.num_topk});
  st->topk_weights = Tensor::contiguous(in.live.topk_weights.get(), DType::kF32, {T, in.num_topk});
  st->y_memory = DeviceBuffer(static_cast<std::size_t>(st->nle * st->cap * w.hidden) * sizeof(std::uint16_t));
  BENCH_CUDA(cudaMemset(st->y_memory.get(), 0, st->y_memory.bytes()));
  st->y = Tensor::contiguous(st->y_memory.get(), DType::kBF16, {st->nle, st->cap, w.hidden});

  const Traffic& tr = context.traffic;
  const auto fp8_row = static_cast<double>(row_bytes(w, Dtype::kFp8));
  const auto bf16_row = static_cast<double>(row_bytes(w, Dtype::kBf16));
  const double dispatch_recv = static_cast<double>(tr.recv_pairs) * fp8_row;
  const double dispatch_wire = static_cast<double>(tr.send_rows_remote) * fp8_row;
  const double combine_recv = static_cast<double>(tr.recv_pairs) * bf16_row;
  // float32 partial sums back to the owners, one per remote token received
  const double combine_wire = static_cast<double>(tr.recv_rows_remote) * static_cast<double>(w.hidden) * 4.0;
  // Pulled (zero-copy y, CUDA IPC): this rank reads a BF16 row per (token, expert) pair held elsewhere.
  const double pull_wire = static_cast<double>(tr.send_pairs_remote) * bf16_row;
  auto make = [](const char* impl, const char* op, const char* dtype, double recv, double wire) {
    BenchOp o;
    o.impl = impl;
    o.op = op;
    o.dtype = dtype;
    o.recv_bytes = recv;
    o.wire_bytes = wire;
    return o;
  };
  auto setup_combine = [st](cudaStream_t s) { st->dispatch_and_write_y(s); };
  auto check_dispatch = [st] { return st->check_dispatch(st->d); };
  auto check_combine = [st] { return st->check_combine(st->c); };

  std::vector<BenchOp> ops;
  const char* impl = nvshmem ? "epcomm-nvshmem" : "epcomm";
  // EPCOMM_KERNEL_TIMING=1: the single-call rows also report the kernel alone (as docs/benchmark.md quotes
  // the reference library), without the stream hand-offs and host work around it.
  const bool timing = st->buffer->kernel_timing();
  auto kernel_us = [st] { return st->buffer->last_kernel_us(); };
  {
    BenchOp o = make(impl, "dispatch", "fp8", dispatch_recv, dispatch_wire);
    o.run = [st](cudaStream_t s) { st->d = st->dispatch(false, s); };
    o.check = check_dispatch;
    if (timing) o.kernel_us = kernel_us;
    ops.push_back(std::move(o));
  }
  {
    BenchOp o = make(impl, "combine", "bf16", combine_recv, combine_wire);
    o.setup = setup_combine;
    o.run = [st](cudaStream_t s) { st->c = st->combine(st->d.handle, false, s); };
    o.check = check_combine;
    if (timing) o.kernel_us = kernel_us;
    ops.push_back(std::move(o));
  }
  if (nvshmem)
    return with_telemetry(with_traces(with_poison(std::move(ops), st), st, w.num_tokens), st,
                          context.session.telemetry());
  {
    // Replays of one captured dispatch: the kernel latency with the streams kept full. Every
    // replay writes the outputs the captured call returned (st->d), which the check reads.
    auto graph = std::make_shared<CapturedCall>();
    BenchOp o = make("epcomm-graph", "dispatch", "fp8", dispatch_recv, dispatch_wire);
    o.setup = [st, graph](cudaStream_t s) {
      graph->capture([st](cudaStream_t c) { st->d = st->dispatch(false, c); }, s);
    };
    o.run = [graph](cudaStream_t s) { graph->replay(s); };
    o.check = check_dispatch;
    ops.push_back(std::move(o));
  }
  {
    auto graph = std::make_shared<CapturedCall>();
    BenchOp o = make("epcomm-graph", "combine", "bf16", combine_recv, combine_wire);
    o.setup = [st, graph](cudaStream_t s) {
      st->dispatch_and_write_y(s);
      graph->capture([st](cudaStream_t c) { st->c = st->combine(st->d.handle, false, c); }, s);
    };
    o.run = [graph](cudaStream_t s) { graph->replay(s); };
    o.check = check_combine;
    ops.push_back(std::move(o));
  }
  {
    BenchOp o = make("epcomm-zc", "combine", "bf16", combine_recv, pull_wire);
    o.setup = [st](cudaStream_t s) { st->write_y_zero_copy(s); };
    o.run = [st](cudaStream_t s) { st->c = st->combine_zero_copy(st->d.handle, s); };
    o.check = check_combine;
    if (timing) o.kernel_us = kernel_us;
    ops.push_back(std::move(o));
  }
  {
    auto graph = std::make_shared<CapturedCall>();
    BenchOp o = make("epcomm-graph-zc", "combine", "bf16", combine_recv, pull_wire);
    o.setup = [st, graph](cudaStream_t s) {
      st->write_y_zero_copy(s);
      graph->capture([st](cudaStream_t c) { st->c = st->combine_zero_copy(st->d.handle, c); }, s);
    };
    o.run = [graph](cudaStream_t s) { graph->replay(s); };
    o.check = check_combine;
    ops.push_back(std::move(o));
  }
  {
    // Logical and wire bytes of both halves: the FP8 dispatch's plus the BF16 combine's.
    BenchOp o =
        make("epcomm", "dispatch+combine", "fp8", dispatch_recv + combine_recv, dispatch_wire + combine_wire);
    o.setup = setup_combine;
    o.run = [st](cudaStream_t s) {
      st->d = st->dispatch(false, s);
      st->c = st->combine(st->d.handle, false, s);
    };
    o.check = [st] {
      const bool d_ok = st->check_dispatch(st->d);
      return st->check_same_layout(st->d) && st->check_combine(st->c) && d_ok;
    };
    ops.push_back(std::move(o));
  }
  {
    auto clock = std::make_shared<PhaseClock>();
    BenchOp o = make("epcomm-hook", "dispatch", "fp8", dispatch_recv, dispatch_wire);
    o.run = [st, clock](cudaStream_t s) { st->d = st->dispatch(true, s, clock.get()); };
    o.check = check_dispatch;
    o.kernel_us = phase_split(st, clock, "dispatch fp8");
    ops.push_back(std::move(o));
  }
  {
    auto clock = std::make_shared<PhaseClock>();
    BenchOp o = make("epcomm-hook", "combine", "bf16", combine_recv, combine_wire);
    o.setup = setup_combine;
    o.run = [st, clock](cudaStream_t s) { st->c = st->combine(st->d.handle, true, s, clock.get()); };
    o.check = check_combine;
    o.kernel_us = phase_split(st, clock, "combine bf16");
    ops.push_back(std::move(o));
  }
  return with_telemetry(with_traces(with_poison(std::move(ops), st), st, w.num_tokens), st,
                        context.session.telemetry());
}

}  // namespace

std::vector<BenchOp> make_epcomm_ll_ops(BenchContext& context) {
  return make_ll_ops(context, LlTransport::kAuto);
}

std::vector<BenchOp> make_epcomm_ll_nvshmem_ops(BenchContext& context) {
  return make_ll_ops(context, LlTransport::kNvshmem);
}

}  // namespace epcomm::bench
