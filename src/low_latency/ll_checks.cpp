#include "low_latency/ll_checks.hpp"

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_layout.hpp"
#include "core/check.hpp"
#include "low_latency/ll_state.hpp"
#include "transport/ll_transport.hpp"
#include "intranode/op_checks.hpp"
#include "core/tensor_checks.hpp"

namespace epcomm::checks {

void check_ll_transport(const BufferOptions& options, const LlNvshmemHooks* hooks) {
  EPCOMM_CHECK_ARG(
      options.ll_transport == LlTransport::kAuto || options.ll_transport == LlTransport::kNvshmem,
      "ll_transport: expected LlTransport::kAuto or LlTransport::kNvshmem, got ",
      static_cast<int>(options.ll_transport));
  if (options.ll_transport != LlTransport::kNvshmem) return;
  EPCOMM_CHECK_ARG(options.low_latency_mode,
                   "ll_transport: LlTransport::kNvshmem applies to low-latency mode; expected "
                   "low_latency_mode = true, got false");
  EPCOMM_REQUIRE(hooks != nullptr, ErrorCategory::kUnsupported,
                 "ll_transport: LlTransport::kNvshmem needs the NVSHMEM transport, which this program does "
                 "not contain (build with -DEPCOMM_WITH_NVSHMEM=ON and link epcomm_nvshmem)");
  EPCOMM_REQUIRE(!hooks->in_use(), ErrorCategory::kUnsupported,
                 "ll_transport: LlTransport::kNvshmem, but NVSHMEM is already in use in this process (by "
                 "another Buffer made with it, or an NvshmemTransport); NVSHMEM keeps one state per "
                 "process, so destroy that one first");
}

void check_ll_options(const LowLatencyOptions& ll, int num_ranks) {
  EPCOMM_CHECK_ARG(num_ranks >= 1, "num_ranks: expected >= 1, got ", num_ranks);
  EPCOMM_REQUIRE(num_ranks <= kLlMaxRanks, ErrorCategory::kUnsupported,
                 "num_ranks: low-latency mode serves 1 to ", kLlMaxRanks, " ranks (at most ", kMaxDomainRanks,
                 " in one NVLink domain), got ", num_ranks);
  EPCOMM_CHECK_ARG(ll.max_tokens_per_rank >= 1, "max_tokens_per_rank: expected >= 1, got ",
                   ll.max_tokens_per_rank);
  EPCOMM_REQUIRE(ll.max_tokens_per_rank <= kLlMaxTokensPerRank, ErrorCategory::kUnsupported,
                 "max_tokens_per_rank: at most ", kLlMaxTokensPerRank, " tokens per rank supported, got ",
                 ll.max_tokens_per_rank);
  EPCOMM_CHECK_ARG(
      ll.hidden >= kLlHiddenMultiple && ll.hidden <= kLlMaxHidden && ll.hidden % kLlHiddenMultiple == 0,
      "hidden: expected a multiple of ", kLlHiddenMultiple, " in [", kLlHiddenMultiple, ", ", kLlMaxHidden,
      "] (one FP8 scale per ", kLlHiddenMultiple, " channels), got ", ll.hidden);
  check_experts(ll.num_experts, num_ranks);
  EPCOMM_CHECK_ARG(ll.max_topk >= 1 && ll.max_topk <= kLlMaxTopk, "max_topk: expected 1 to ", kLlMaxTopk,
                   ", got ", ll.max_topk);
  EPCOMM_CHECK_ARG(ll.num_blocks >= 0, "num_blocks: expected >= 0 (0: one block per SM), got ", ll.num_blocks);
  // The dispatch receive phase keeps the rows' layout (per local expert and source) in shared memory.
  const std::size_t max_local =
      (kLlMaxSharedBytes / sizeof(std::int32_t) - 2) / (static_cast<std::size_t>(num_ranks) + 1);
  EPCOMM_REQUIRE(ll_dispatch_smem_bytes(num_ranks, ll.num_experts / num_ranks) <= kLlMaxSharedBytes,
                 ErrorCategory::kUnsupported, "num_experts: at most ",
                 max_local * static_cast<std::size_t>(num_ranks), " experts supported with ", num_ranks,
                 " ranks (", max_local, " per rank), got ", ll.num_experts);
}

void check_ll_buffer(const BufferOptions& options, const LowLatencyOptions& ll, int num_ranks,
                     int known_domains) {
  check_ll_options(ll, num_ranks);
  EPCOMM_CHECK_ARG(options.low_latency_mode,
                   "low_latency_mode: expected true for a Buffer made with LowLatencyOptions, got false");
  // The workspace is symmetric memory.
  if (options.ll_transport == LlTransport::kNvshmem || known_domains > 1) return;
  const std::int64_t needed =
      ll_region_bytes_hint(ll.max_tokens_per_rank, ll.hidden, num_ranks, ll.num_experts, ll.max_topk);
  EPCOMM_CHECK_ARG(options.num_nvl_bytes >= needed,
                   "num_nvl_bytes: low-latency mode with max_tokens_per_rank=", ll.max_tokens_per_rank,
                   ", hidden=", ll.hidden, ", ", num_ranks, " ranks, num_experts=", ll.num_experts,
                   ", max_topk=", ll.max_topk, " needs at least ", needed,
                   " bytes (ll_region_bytes_hint), got ", options.num_nvl_bytes);
}

LlState& require_ll_state(LlState* state, const char* op) {
  EPCOMM_CHECK_ARG(state != nullptr, op,
                   ": this Buffer was not made for low-latency mode (construct it with LowLatencyOptions)");
  return *state;
}

LlDispatchShape check_ll_dispatch_args(const Tensor& x, const Tensor& topk_idx,
                                       const LlDispatchOptions& options, const LowLatencyOptions& ll,
                                       int num_ranks) {
  LlDispatchShape shape;
  expect_dtype(x, "x", {DType::kBF16});
  expect_shape(x, "x", {kAny, ll.hidden});
  expect_contiguous(x, "x");
  expect_aligned(x, "x", 16);
  shape.num_tokens = x.size(0);
  EPCOMM_CHECK_ARG(shape.num_tokens <= ll.max_tokens_per_rank,
                   "x: expected at most max_tokens_per_rank=", ll.max_tokens_per_rank, " tokens, got ",
                   shape.num_tokens);
  expect_dtype(topk_idx, "topk_idx", {DType::kI64, DType::kI32});
  expect_shape(topk_idx, "topk_idx", {shape.num_tokens, kAny});
  expect_contiguous(topk_idx, "topk_idx");
  shape.num_topk = static_cast<int>(topk_idx.size(1));
  EPCOMM_CHECK_ARG(shape.num_topk >= 1 && shape.num_topk <= ll.max_topk,
                   "topk_idx: expected 1 to max_topk=", ll.max_topk, " columns, got ", shape.num_topk);
  shape.idx_bytes = static_cast<int>(dtype_size(topk_idx.dtype));
  EPCOMM_CHECK_ARG(
      !options.use_ue8m0 || options.round_scale,
      "use_ue8m0: expected round_scale=true with use_ue8m0=true (UE8M0 stores power-of-two scales "
      "only), got round_scale=false");
  EPCOMM_CHECK_ARG(!options.round_scale || options.use_fp8,
                   "round_scale: applies to FP8 scales, expected use_fp8=true, got use_fp8=false");
  const Tensor& stats = options.cumulative_local_expert_recv_stats;
  if (stats.defined()) {
    expect_dtype(stats, "cumulative_local_expert_recv_stats", {DType::kI32});
    expect_shape(stats, "cumulative_local_expert_recv_stats", {ll.num_experts / num_ranks});
    expect_contiguous(stats, "cumulative_local_expert_recv_stats");
    expect_aligned(stats, "cumulative_local_expert_recv_stats", 4);
  }
  return shape;
}

void check_ll_handle(const LlHandle& handle, const LlState& state, int num_ranks) {
  EPCOMM_CHECK_ARG(handle.defined(),
                   "handle: expected the handle of a low_latency_dispatch, got an empty one");
  const LlHandle::State& h = ll_handle_state(handle);
  EPCOMM_CHECK_ARG(h.owner == static_cast<const void*>(&state),
                   "handle: made by another Buffer's low_latency_dispatch");
  EPCOMM_CHECK_ARG(h.num_ranks == num_ranks, "handle: made for ", h.num_ranks,
                   " ranks, this buffer has ", num_ranks);
  EPCOMM_CHECK_ARG(h.dispatch_index >= 1 && h.dispatch_index <= state.num_dispatches,
                   "handle: not from a dispatch of this buffer (index ", h.dispatch_index, ")");
  // NOTE: dispatch outputs are double-buffered: the dispatch two calls later reused this memory.
  EPCOMM_CHECK_ARG(
      state.num_dispatches - h.dispatch_index < 2, "handle: the outputs of dispatch #",
      h.dispatch_index, " were overwritten by dispatch #", h.dispatch_index + 2,
      " (the results of at most the last two low-latency dispatches stay valid); this buffer has run ",
      state.num_dispatches, " dispatches");
}

void check_ll_combine_args(const Tensor& y, const Tensor& topk_idx, const Tensor& topk_weights,
                           const LlHandle& handle, const LlCombineOptions& options,
                           const LlState& state, int num_ranks, const void* next_zero_copy_y) {
  check_ll_handle(handle, state, num_ranks);
  const LlHandle::State& h = ll_handle_state(handle);
  EPCOMM_CHECK_ARG(h.received == nullptr || *h.received,
                   "handle: its dispatch was split (return_recv_hook) and its receive() has not run yet");
  const LlLayout& l = state.layout;
  expect_dtype(y, "y", {DType::kBF16});
  expect_shape(y, "y", {l.num_local_experts, l.capacity, l.hidden});
  expect_contiguous(y, "y");
  expect_aligned(y, "y", 16);
  if (options.zero_copy)
    EPCOMM_CHECK_ARG(y.data == next_zero_copy_y,
                     "y: with zero_copy, expected the buffer get_next_low_latency_combine_buffer returned (",
                     next_zero_copy_y, "), got ", y.data);
  expect_dtype(topk_idx, "topk_idx", {DType::kI64, DType::kI32});
  expect_shape(topk_idx, "topk_idx", {h.num_tokens, h.num_topk});
  expect_contiguous(topk_idx, "topk_idx");
  expect_dtype(topk_weights, "topk_weights", {DType::kF32});
  expect_shape(topk_weights, "topk_weights", {h.num_tokens, h.num_topk});
  expect_contiguous(topk_weights, "topk_weights");
  if (options.out.defined()) {
    const Tensor& out = options.out;
    expect_dtype(out, "out", {DType::kBF16});
    expect_shape(out, "out", {h.num_tokens, l.hidden});
    expect_contiguous(out, "out");
    expect_aligned(out, "out", 16);
    const auto* o0 = static_cast<const char*>(out.data);
    const auto* y0 = static_cast<const char*>(y.data);
    EPCOMM_CHECK_ARG(o0 + out.nbytes() <= y0 || y0 + y.nbytes() <= o0, "out: overlaps y (combine reads y while it writes out)");
  }
}

void check_not_in_flight(const LlState& state, int kind, int half) {
  const std::shared_ptr<bool>& pending = state.pending[kind][half];
  const bool dispatch = kind == kLlKindDispatch;
  EPCOMM_CHECK_ARG(
      pending == nullptr || *pending, "return_recv_hook: the low-latency ", dispatch ? "dispatch" : "combine",
      " two calls ago was split and its receive() has not run yet; at most two low-latency ",
      dispatch ? "dispatches" : "combines", " may be in flight (call the older receive() first)");
}

void check_dispatch_outputs_free(const LlState& state, int half) {
  const std::shared_ptr<bool>& reads = state.zero_copy_reads[half];
  EPCOMM_CHECK_ARG(reads == nullptr || *reads,
                   "low_latency_dispatch: a zero-copy combine of the dispatch two calls ago was split "
                   "(return_recv_hook) and its receive() has not run yet; its peers may still read that "
                   "dispatch's outputs, which this dispatch would overwrite (call that receive() first)");
}

}  // namespace epcomm::checks
