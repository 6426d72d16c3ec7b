// Low-latency mode of Buffer: the constructor that sets it up, the region size hint, the zero-copy
// combine buffer and the phase trace. The operations are in ll_dispatch_op.cpp and ll_combine_op.cpp.
#include <algorithm>
#include <iterator>
#include <memory>
#include <vector>

#include "buffer/buffer_impl.hpp"
#include "buffer/trace_copy.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/env.hpp"
#include "core/log.hpp"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_domains.hpp"
#include "low_latency/ll_layout.hpp"
#include "low_latency/ll_state.hpp"
#include "transport/ll_transport.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

namespace {

// The public names of the trace points (epcomm/ll_trace.hpp), in LlTracePoint order (ll_args.hpp).
constexpr const char* kLlTracePointNames[] = {"entry",      "credits",      "list-binned", "list-placed",
                                              "sent",       "send-arrived", "recv-entry",  "done-seen",
                                              "item-ready", "received",     "exit"};
static_assert(std::size(kLlTracePointNames) == kLlTracePoints, "one name per LlTracePoint");

// Checks everything about the low-latency options before the (collective) construction starts,
// so every rank refuses bad options alike without leaving peers waiting in a barrier. Domains that
// a requested ranks_per_domain already makes several are checked here too (discovered ones after
// discovery, alike on every rank).
const BufferOptions& checked_ll_options(const std::shared_ptr<Bootstrap>& bootstrap,
                                        const BufferOptions& options, const LowLatencyOptions& ll) {
  EPCOMM_CHECK_ARG(bootstrap != nullptr, "bootstrap: expected a bootstrap, got null");
  const int num_ranks = bootstrap->size();
  const int known_domains = ll_requested_num_domains(num_ranks, requested_ranks_per_domain(options));
  checks::check_ll_buffer(options, ll, num_ranks, known_domains);
  if (known_domains > 1) select_ll_path(options, num_ranks, num_ranks / known_domains, ll_nvshmem_hooks());
  return options;
}

// What each rank tells the others once its workspace is open.
struct LlReadyRecord {
  int blocks;       // the grid this rank can run (one block per SM at most)
  int unreachable;  // a domain peer without a load/store address here (hybrid), or -1
  int direct;       // 1: this rank asks for the direct dispatch (CUDA IPC only)
  int pull;         // 1: this rank asks for the pulled zero-copy combine (CUDA IPC only)
};

// Opens the workspace of `path` and picks its kernels; with several domains the kernels get the
// view of every rank. Collective with the NVSHMEM paths.
void open_ll_workspace(Buffer::Impl& m, LlState& state, LlPath path) {
  state.path = path;
  state.view = m.view;
  if (path == LlPath::kIpc) {
    state.workspace = RegionLayout::data(m.region.get());
    state.launch_dispatch = &launch_ll_dispatch;
    state.launch_combine = &launch_ll_combine;
    return;
  }
  const LlNvshmemHooks* hooks = ll_nvshmem_hooks();  // present: select_ll_path checked
  void* workspace = nullptr;
  state.nvshmem = hooks->open_workspace(*m.bootstrap, state.layout.total_bytes, &workspace);
  state.workspace = static_cast<char*>(workspace);
  const bool hybrid = path == LlPath::kHybrid;
  state.launch_dispatch = hybrid ? hooks->launch_dispatch_hybrid : hooks->launch_dispatch;
  state.launch_combine = hybrid ? hooks->launch_combine_hybrid : hooks->launch_combine;
  if (m.domains.num_domains > 1)
    state.view = ll_world_view(m.view, m.rank(), m.num_ranks(), m.domains.ranks_per_domain, path);
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
    : Buffer(&ll, bootstrap, checked_ll_options(bootstrap, options, ll)) {
  auto state = std::make_shared<LlState>();
  state->options = ll;
  state->layout = LlLayout::make(num_ranks(), ll.max_tokens_per_rank, ll.hidden, ll.num_experts, ll.max_topk);
  const LlPath path =
      select_ll_path(options, num_ranks(), impl_->domains.ranks_per_domain, ll_nvshmem_hooks());
  EPCOMM_LOG_INFO("low-latency Buffer: opening the workspace, transport ", to_string(path));
  open_ll_workspace(*impl_, *state, path);
  LlReadyRecord mine{.blocks = 0,
                     .unreachable = -1,
                     .direct = path == LlPath::kIpc && env::get_bool("EPCOMM_LL_DIRECT_DISPATCH") ? 1 : 0,
                     .pull = path == LlPath::kIpc && env::get_bool("EPCOMM_LL_PULL_COMBINE") ? 1 : 0};
  if (path == LlPath::kHybrid)
    mine.unreachable = map_domain_workspaces(state->view, ll_nvshmem_hooks()->peer_pointer, state->workspace);
  // NOTE: one block per SM at most, so every block of a launch is resident at once; and the same
  // grid on every rank, the smallest any rank can run, since credits count blocks (ll_args.hpp).
  const int blocks =
      env::is_set("EPCOMM_LL_BLOCKS") ? static_cast<int>(env::get_int("EPCOMM_LL_BLOCKS")) : ll.num_blocks;
  mine.blocks = std::min(blocks > 0 ? std::min(blocks, impl_->num_sms) : impl_->num_sms, kLlMaxBlocks);
  EPCOMM_LOG_INFO("low-latency Buffer: workspace open; agreeing on the grid with every rank");
  std::vector<LlReadyRecord> every(static_cast<std::size_t>(num_ranks()));
  impl_->bootstrap->all_gather(&mine, every.data(), sizeof(LlReadyRecord));
  state->num_blocks = impl_->num_sms;
  state->direct_dispatch = true;
  state->pull_combine = true;
  for (const LlReadyRecord& r : every) {
    state->num_blocks = std::min(state->num_blocks, r.blocks);
    state->direct_dispatch = state->direct_dispatch && r.direct != 0;
    state->pull_combine = state->pull_combine && r.pull != 0;
  }
  // Every rank refuses alike when one of them cannot store into a peer of its domain.
  for (std::size_t r = 0; r < every.size(); ++r)
    EPCOMM_REQUIRE(every[r].unreachable < 0, ErrorCategory::kUnsupported, "ranks_per_domain: rank ", r,
                   " has no load/store address of rank ", every[r].unreachable,
                   "'s workspace (nvshmem_ptr returned null), although both are in NVLink domain ",
                   r / static_cast<std::size_t>(impl_->domains.ranks_per_domain),
                   "; the ranks of a domain must reach each other peer-to-peer (set ranks_per_domain so "
                   "that they do)");
  if (env::get_int("EPCOMM_LL_TRACE") > 0) {
    const std::size_t bytes = sizeof(std::uint64_t) * kLlTraceRing * kLlTracePoints * state->num_blocks;
    for (DeviceBuffer& trace : state->trace) {
      trace = DeviceBuffer(bytes);
      EPCOMM_CUDA_CHECK(cudaMemset(trace.get(), 0, bytes));
    }
  }
  impl_->ll = std::move(state);
  EPCOMM_LOG_INFO("low-latency mode: max_tokens_per_rank ", ll.max_tokens_per_rank, ", hidden ", ll.hidden,
                  ", num_experts ", ll.num_experts, ", max_topk ", ll.max_topk, ", ",
                  impl_->ll->layout.total_bytes, " bytes of ",
                  path == LlPath::kIpc ? "the NVLink region" : "NVSHMEM symmetric memory", ", transport ",
                  to_string(path), ", ", impl_->domains.num_domains, " NVLink domains, ",
                  impl_->ll->num_blocks, " blocks per launch");
}

Tensor Buffer::get_next_low_latency_combine_buffer(const LlHandle& handle) const {
  const LlState& st = checks::require_ll_state(impl_->ll.get(), "get_next_low_latency_combine_buffer");
  checks::check_ll_handle(handle, st, impl_->num_ranks());
  const LlLayout& l = st.layout;
  const int half = static_cast<int>(st.num_combines & 1u);
  // The combine two calls ago read this buffer; split and not yet received, its peers may still
  // read it (a pulled combine), so it cannot be written yet.
  checks::check_not_in_flight(st, kLlKindCombine, half);
  return Tensor::contiguous(l.zero_copy_y(st.workspace, half), DType::kBF16,
                            {l.num_local_experts, l.capacity, l.hidden});
}

LlTrace Buffer::low_latency_trace(LlKernel kernel, bool clear) {
  const LlState* st = impl_->ll.get();
  const int kind = kernel == LlKernel::kCombine ? kLlKindCombine : kLlKindDispatch;
  if (st == nullptr || st->trace_of(kind) == nullptr) return {};
  const DeviceBuffer& record = st->trace[kind];
  return LlTrace{.ring = kLlTraceRing,
                 .blocks = st->num_blocks,
                 .points = {std::begin(kLlTracePointNames), std::end(kLlTracePointNames)},
                 .stamps = copy_trace_stamps(record, clear)};
}

void reset_ll_sequence(LlState& state) {
  const LlLayout& l = state.layout;
  EPCOMM_CUDA_CHECK(cudaMemset(l.control_of(state.workspace, 0), 0, sizeof(LlControl) * kLlNumKinds));
  // The direct dispatch's part masks, tagged lists and per-block flags hold sequence numbers, which
  // restart from 0.
  EPCOMM_CUDA_CHECK(cudaMemset(LlLayout::base(state.workspace) + l.dispatch_part_mask, 0,
                               l.dispatch_direct_end - l.dispatch_part_mask));
  // So do the tags of the combine weights (ll_tag_word) and the combine's per-block flags.
  EPCOMM_CUDA_CHECK(cudaMemset(LlLayout::base(state.workspace) + l.combine_weights, 0,
                               l.combine_tagged_end - l.combine_weights));
  // The host's call counts keep judging old handles; rounded up to even, every rank's next call of
  // a kind writes half 0, though a rank that missed calls made fewer (the pulled combine reads a
  // peer's y and token_rows at its own halves). A handle whose half the next call reuses is then
  // refused a little early, never late.
  state.num_dispatches += state.num_dispatches & 1u;
  state.num_combines += state.num_combines & 1u;
  for (auto& kind : state.pending)
    for (auto& half : kind) half.reset();
  for (auto& half : state.zero_copy_reads) half.reset();
}

}  // namespace epcomm
