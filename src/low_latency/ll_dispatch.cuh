// Low-latency dispatch, the kernel family's body (see ll_args.hpp for the protocol), templated on
// how peers are reached (ll_peers.cuh). Included by exactly the translation units that instantiate
// it: ll_dispatch.cu (CUDA IPC) and transport/nvshmem_ll_dispatch.cu (NVSHMEM); its definitions sit
// in an unnamed namespace, one private copy per such unit.
//
// Send phase: warp w of the grid takes (token, 512-channel part) items; it loads 16 channels per
// lane, finds the token's destination ranks (distinct ranks of its valid experts), casts the
// channels to FP8 in registers when asked (the 8 lanes of a 128-channel block reduce the amax by
// shuffles), and stores the piece and its scales once into each destination's staging. Its first
// item is loaded and cast before the credit wait. Then every block writes the lists of this rank's
// (token, slot) selections of its experts (b, b + grid, ...) into their holders (send_selections).
// Receive phase: every block scans the lists' lengths into
// the rows' layout (an expert's rows are its sources' lists one after the other), then all warps of
// the grid take (row, batch) items over all experts and copy the staged token each entry names
// into recv_x.
#pragma once

#include <cstdint>

#include "core/cuda_check.hpp"
#include "core/func_attributes.hpp"
#include "core/pdl.cuh"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_dispatch_direct.cuh"
#include "low_latency/ll_dispatch_lists.cuh"
#include "low_latency/ll_dispatch_recv.cuh"
#include "low_latency/ll_dispatch_send.cuh"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// The staging form (every transport).
template <typename Peers>
__global__ void __launch_bounds__(kLlThreads, 1) ll_dispatch_kernel(LlDispatchArgs a) {
  pdl_entry();
  extern __shared__ std::int32_t recv_smem[];  // RecvLayout: [nle * R + 1] + [nle + 1]
  RowItem first;
  WarpMask mask;
  ll_run_phases<Peers>(
      a.view, a.layout, a.workspace, kLlKindDispatch, OpId::kLlDispatch, a.phases, a.half, a.trace,
      a.signature, [&] { first = first_row_item(a, gridDim.x, mask); },
      [&](int parity, std::uint64_t seq) {
        clear_token_rows(a);
        send_rows<Peers>(a, parity, seq, first, gridDim.x, mask);
        send_selections<Peers>(a, parity);
      },
      [] {}, [&](int parity) { run_receive(a, parity, recv_smem); });
}

// The direct form (ll_dispatch_direct.cuh): a kernel of its own, so that the staging form's
// registers are its own too.
template <typename Peers>
__global__ void __launch_bounds__(kLlThreads, 1) ll_dispatch_direct_kernel(LlDispatchArgs a) {
  pdl_entry();
  extern __shared__ std::int32_t smem[];  // SourceRows: [nle * R] + [nle] (within RecvLayout's size)
  ll_dispatch_direct<Peers>(a, smem);
}

// The launcher of the instantiation for `Peers`: the direct form where the policy stores into
// every peer and the Buffer chose it (LlDispatchArgs::direct), else the staging form.
template <typename Peers>
void launch_ll_dispatch_with(const LlDispatchArgs& args, int num_blocks, void* stream) {
  const std::size_t smem = ll_dispatch_smem_bytes(args.layout.num_ranks, args.layout.num_local_experts);
  auto launch = [&](auto kernel) {
    // NOTE: raised for every size, not only past 48 KiB: that default covers static and dynamic
    // shared memory together, and the ledger makes the call free once the limit is in place.
    raise_func_attribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(smem));
    launch_kernel(Launch::kPdl, kernel, num_blocks, kLlThreads, smem, static_cast<cudaStream_t>(stream),
                  args);
  };
  if constexpr (!Peers::kStagesLocally) {
    if (args.direct) {
      launch(ll_dispatch_direct_kernel<Peers>);
      return;
    }
  }
  launch(ll_dispatch_kernel<Peers>);
}

}  // namespace

}  // namespace epcomm
