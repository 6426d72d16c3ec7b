// Low-latency mode of Buffer: the constructor that sets it up, the region size hint, the zero-copy
// combine buffer and the phase trace. The operations are in ll_dispatch_op.cpp and ll_combine_op.cpp.
#include <algorithm>
#include <iterator>
#include <memory>
#include <vector>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_layout.hpp"
#include "transport/region_layout.hpp"
#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/env.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_state.hpp"
#include "transport/ll_transport.hpp"
#include "core/log.hpp"

namespace epcomm {

namespace {

// The public names of the trace points (epcomm/ll_trace.hpp), in LlTracePoint order (ll_args.hpp).
constexpr const char* kLlTracePointNames[] = {"entry",      "credits",   "sent",     "send-arrived",
                                              "recv-entry", "done-seen", "received", "exit"};
static_assert(std::size(kLlTracePointNames) == kLlTracePoints, "one name per LlTracePoint");

// Checks everything about the low-latency options before the (collective) construction starts,
// so every rank refuses bad options alike without leaving peers waiting in a barrier.
const BufferOptions& checked_ll_options(const std::shared_ptr<Bootstrap>& bootstrap,
                                        const BufferOptions& options, const LowLatencyOptions& ll) {
  EPCOMM_CHECK_ARG(bootstrap != nullptr, "bootstrap: expected a bootstrap, got null");
  checks::check_ll_buffer(options, ll, bootstrap->size());
  return options;
}

}  // namespace

std::int64_t ll_region_bytes_hint(std::int64_t max_tokens_per_rank, std::int64_t hidden, int num_ranks,
                                  int num_experts, int max_topk) {
  checks::check_ll_options({.max_tokens_per_rank = max_tokens_per_rank,
                            .hidden = hidden,
                            .num_experts = num_experts,
                            .max_topk = max_topk},
                           num_ranks);
  return static_cast<std::int64_t>(
      LlLayout::make(num_ranks, max_tokens_per_rank, hidden, num_experts, max_topk).total_bytes);
}

Buffer::Buffer(std::shared_ptr<Bootstrap> bootstrap, const BufferOptions& options,
               const LowLatencyOptions& ll)
    : Buffer(bootstrap, checked_ll_options(bootstrap, options, ll)) {
  auto state = std::make_shared<LlState>();
  state->options = ll;
  state->layout = LlLayout::make(num_ranks(), ll.max_tokens_per_rank, ll.hidden, ll.num_experts, ll.max_topk);
  // NOTE: one block per SM at most, so every block of a launch is resident at once; and the same
  // grid on every rank, the smallest any rank can run, since credits count blocks (ll_args.hpp).
  const int blocks = env::is_set("EPCOMM_LL_BLOCKS") ? static_cast<int>(env::get_int("EPCOMM_LL_BLOCKS"))
                                                      : ll.num_blocks;
  const int mine = blocks > 0 ? std::min(blocks, impl_->num_sms) : impl_->num_sms;
  std::vector<int> every(static_cast<std::size_t>(num_ranks()));
  impl_->bootstrap->all_gather(&mine, every.data(), sizeof(int));
  state->num_blocks = *std::min_element(every.begin(), every.end());
  if (env::get_bool("EPCOMM_LL_TRACE")) {
    const std::size_t bytes = sizeof(std::uint64_t) * kLlTraceRing * kLlTracePoints * state->num_blocks;
    for (DeviceBuffer& trace : state->trace) {
      trace = DeviceBuffer(bytes);
      EPCOMM_CUDA_CHECK(cudaMemset(trace.get(), 0, bytes));
    }
  }
  const bool nvshmem = options.ll_transport == LlTransport::kNvshmem;
  if (nvshmem) {
    const LlNvshmemHooks* hooks = ll_nvshmem_hooks();  // present: checked before any collective step
    void* workspace = nullptr;
    state->nvshmem = hooks->open_workspace(*impl_->bootstrap, state->layout.total_bytes, &workspace);
    state->workspace = static_cast<char*>(workspace);
    state->launch_dispatch = hooks->launch_dispatch;
    state->launch_combine = hooks->launch_combine;
  } else {
    state->workspace = RegionLayout::data(impl_->region.get());
    state->launch_dispatch = &launch_ll_dispatch;
    state->launch_combine = &launch_ll_combine;
  }
  impl_->ll = std::move(state);
  EPCOMM_LOG_INFO("low-latency mode: max_tokens_per_rank ", ll.max_tokens_per_rank, ", hidden ", ll.hidden,
                  ", num_experts ", ll.num_experts, ", max_topk ", ll.max_topk, ", ",
                  impl_->ll->layout.total_bytes, " bytes of ",
                  nvshmem ? "NVSHMEM symmetric memory (every peer through NVSHMEM)" : "the NVLink region",
                  ", ", impl_->ll->num_blocks, " blocks per launch");
}

Tensor Buffer::get_next_low_latency_combine_buffer(const LlHandle& handle) const {
  const LlState& st = checks::require_ll_state(impl_->ll.get(), "get_next_low_latency_combine_buffer");
  checks::check_ll_handle(handle, st, impl_->num_ranks());
  const LlLayout& l = st.layout;
  const int half = static_cast<int>(st.num_combines & 1u);
  return Tensor::contiguous(l.zero_copy_y(st.workspace, half), DType::kBF16,
                            {l.num_local_experts, l.capacity, l.hidden});
}

LlTrace Buffer::low_latency_trace(LlKernel kernel, bool clear) {
  const LlState* st = impl_->ll.get();
  const int kind = kernel == LlKernel::kCombine ? kLlKindCombine : kLlKindDispatch;
  if (st == nullptr || st->trace_of(kind) == nullptr) return {};
  const DeviceBuffer& record = st->trace[kind];
  LlTrace trace{.ring = kLlTraceRing,
                .blocks = st->num_blocks,
                .points = {std::begin(kLlTracePointNames), std::end(kLlTracePointNames)},
                .stamps = std::vector<std::uint64_t>(record.bytes() / sizeof(std::uint64_t))};
  // The calls ran on the callers' streams: a device-wide wait covers them all, and the clearing is
  // done before the next call can stamp.
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  EPCOMM_CUDA_CHECK(cudaMemcpy(trace.stamps.data(), record.get(), record.bytes(), cudaMemcpyDeviceToHost));
  if (clear) {
    EPCOMM_CUDA_CHECK(cudaMemset(record.get(), 0, record.bytes()));
    EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  }
  return trace;
}

void reset_ll_sequence(LlState& state) {
  EPCOMM_CUDA_CHECK(
      cudaMemset(state.layout.control_of(state.workspace, 0), 0, sizeof(LlControl) * kLlNumKinds));
  // The host's call counts stay: they pick output halves only, and keep judging old handles.
  for (auto& kind : state.pending)
    for (auto& half : kind) half.reset();
}

void abandon_collective_teardown(LlState& state) noexcept {
  if (!state.nvshmem) return;
  // NOTE: kept alive on purpose (never destroyed): its deleter is the collective teardown.
  static auto* abandoned = new std::vector<std::shared_ptr<void>>();
  try {
    abandoned->push_back(std::move(state.nvshmem));
    EPCOMM_LOG_WARN("Buffer teardown: a peer is gone, so NVSHMEM's collective teardown is skipped; this "
                    "process cannot make another NVSHMEM Buffer (restart it to use NVSHMEM again)");
  } catch (const std::exception& e) {
    EPCOMM_LOG_WARN("Buffer teardown: could not set NVSHMEM aside: ", e.what());
  }
}

}  // namespace epcomm
