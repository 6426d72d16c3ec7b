// The host state of a Buffer made for low-latency mode (epcomm/low_latency.hpp), shared by the
// translation units that implement its operations and by tests.
#pragma once

#include <cstdint>
#include <memory>

#include "core/cuda_raii.hpp"
#include "core/domain_view.hpp"
#include "epcomm/buffer.hpp"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_layout.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {

struct LlState {
  LowLatencyOptions options;
  LlLayout layout;             // where everything sits in the workspace
  int num_blocks = 0;          // grid of every low-latency launch: one block per SM (ll_args.hpp)
  LlPath path = LlPath::kIpc;  // how peers are reached (transport/ll_transport.hpp)
  // The dispatch's direct form (CUDA IPC; every rank agreed, EPCOMM_LL_DIRECT_DISPATCH), else the
  // staging form (low_latency/ll_args.hpp).
  bool direct_dispatch = false;
  // A zero-copy combine is pulled by the tokens' owners (CUDA IPC; every rank agreed,
  // EPCOMM_LL_PULL_COMBINE), else pushed by the holders (low_latency/ll_args.hpp).
  bool pull_combine = false;
  // What the kernels get: the Buffer's domain view with one domain; with several, the view of
  // every rank (low_latency/ll_domains.hpp), whose peer_base holds the domain peers' workspaces
  // (LlPath::kHybrid).
  DomainView view;
  // This rank's workspace (layout.total_bytes): the data area of the NVLink region (CUDA IPC), or
  // symmetric memory owned by `nvshmem` (LlPath::kNvshmem, kHybrid).
  char* workspace = nullptr;
  std::shared_ptr<void> nvshmem;  // NVSHMEM and the symmetric workspace; null with CUDA IPC
  // The kernels of the transport (transport/ll_transport.hpp).
  LlDispatchLauncher launch_dispatch = nullptr;
  LlCombineLauncher launch_combine = nullptr;
  // Calls so far on the host. The next call of a kind writes its outputs to half (calls & 1).
  std::uint64_t num_dispatches = 0;
  std::uint64_t num_combines = 0;
  // [kind][half]: the receive flag of the last split call of that kind and half (null when that
  // call was not split). A third split call while the first is not received is refused.
  std::shared_ptr<bool> pending[kLlNumKinds][2];
  // [dispatch half]: the receive flag of the last split zero-copy combine that read that half's
  // dispatch (null: none). Pulled, its peers read that dispatch's token_rows until the receive runs,
  // so a dispatch into that half waits for it (checks::check_dispatch_outputs_free).
  std::shared_ptr<bool> zero_copy_reads[2];
  // [kind]: phase timestamps of the last kLlTraceRing launches, [ring][num_blocks][kLlTracePoints]
  // (ll_args.hpp, LlTracePoint); empty unless EPCOMM_LL_TRACE was set when the Buffer was made.
  DeviceBuffer trace[kLlNumKinds];
  std::uint64_t* trace_of(int kind) const { return trace[kind].as<std::uint64_t>(); }
};

// Zeroes this rank's control blocks (sequence numbers, done, credits, weights, signatures), as when
// the workspace was made, forgets split calls not received (their receive must not run after
// this), and rounds the call counts up to even, so that every rank's next dispatch and next combine
// use half 0 whatever calls it missed (a pulled combine reads its peers' halves as its own). Only
// inside a collective reset in which no rank runs a kernel (Buffer::clear_rank_mask).
void reset_ll_sequence(LlState& state);

}  // namespace epcomm
