// Low-latency dispatch, send phase: the lists of this rank's (token, slot) selections of each
// expert, written into the expert's holder (ll_dispatch.cuh has the kernel; ll_args.hpp, step 2,
// the protocol). Templated on how peers are reached (ll_peers.cuh); definitions in an unnamed
// namespace, one private copy per including translation unit.
#pragma once

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// Experts whose lists one pass over the top-k ids builds in a block (bounds its shared memory).
constexpr int kListGroup = 32;
// Top-k ids each thread loads before it places any of them (loads in flight per thread).
constexpr int kListSpan = 4;

// Block b builds the lists of experts b, b + grid, b + 2 grid, ... (every block builds some, after
// its rows, so no block's lists are the send phase's tail). One pass over the top-k ids per group
// of kListGroup experts: each thread loads kListSpan ids, and an id of the group takes its place in
// its expert's list by a shared-memory atomic on the expert's length, then stores its entry. No
// block barrier between ids: one before the pass (the lengths start at 0) and one after (the
// lengths are final). An expert's list is in no fixed order (SPEC: rows of one source need not be
// in token order; layout_range and src_info describe the order the receive makes from it). A list
// and its length go into the expert's holder (a staging policy: into this rank's own workspace,
// then puts them). Entries outside [-1, E) are reported (by block 0); selections beyond T of one
// expert (a token naming it twice) are reported and dropped. A masked holder gets no list: its
// experts' slots behave as -1 (SPEC "Rank masking").
template <typename Peers>
__device__ void send_selections(const LlDispatchArgs& a, int parity) {
  __shared__ std::int32_t filled[kListGroup];  // entries of each expert of the group so far
  // The workspace each expert of the group's list goes into (its holder's, or this rank's own
  // for a holder reached by puts); null for a masked holder. Decided once per group, not per hit.
  __shared__ void* holder_of[kListGroup];
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32), me = v.domain_rank;
  // NOTE: 32-bit indices: T * k <= kLlMaxTokensPerRank * kLlMaxTopk fits.
  const int n = static_cast<int>(a.num_tokens) * a.num_topk;
  const int mine = b < l.num_experts ? (l.num_experts - b + grid - 1) / grid : 0;  // block-uniform
  for (int g0 = 0; g0 < mine; g0 += kListGroup) {
    const int group = min(kListGroup, mine - g0);  // experts b + (g0 + k) * grid, k < group
    if (static_cast<int>(threadIdx.x) < group) {
      const int holder_rank = (b + (g0 + static_cast<int>(threadIdx.x)) * grid) / l.num_local_experts;
      void* holder = nullptr;
      if (!peer_masked(v, holder_rank))
        holder = ll_by_put<Peers>(v, holder_rank) ? a.workspace : Peers::target(v, a.workspace, holder_rank);
      filled[threadIdx.x] = 0;
      holder_of[threadIdx.x] = holder;
    }
    __syncthreads();  // the group's lengths are 0 and its holders known
    for (int base = 0; base < n; base += kLlThreads * kListSpan) {
      std::int64_t ids[kListSpan];
#pragma unroll
      for (int u = 0; u < kListSpan; ++u) {
        const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
        ids[u] = i < n ? ll_load_expert(a.topk_idx, a.idx_bytes, i) : -1;
      }
#pragma unroll
      for (int u = 0; u < kListSpan; ++u) {
        const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
        const std::int64_t e = ids[u];
        if ((e < -1 || e >= l.num_experts) && b == 0 && g0 == 0)
          report_failure(v.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         -1, e, i / a.num_topk);
        if (e < b || e >= l.num_experts) continue;
        const LlSplit q = ll_split(e - b, grid);
        const int k = q.quot - g0;
        if (q.rem != 0 || k < 0 || k >= group) continue;
        void* holder = holder_of[k];
        if (holder == nullptr) continue;  // masked
        const int at = atomicAdd(&filled[k], 1);
        if (at < l.max_tokens) {
          const int t = i / a.num_topk;
          l.sel(holder, parity, me, static_cast<int>(e))[at] = ll_pack_selection(t, i - t * a.num_topk);
        }
      }
    }
    __syncthreads();  // `filled` is final; every entry of the group's lists is written
    if constexpr (Peers::kStagesLocally) {
      // NOTE: other warps of the block wrote the lists this warp puts (ordered here by the block
      // barrier above); one fence per warp that puts any makes them visible to whatever carries
      // the puts (a NIC too).
      bool puts = false;  // warp-uniform
      for (int k = warp; k < group; k += kLlWarps)
        puts |= holder_of[k] != nullptr && ll_by_put<Peers>(v, (b + (g0 + k) * grid) / l.num_local_experts);
      if (puts) ptx::fence_acq_rel_sys();
    }
    for (int k = warp; k < group; k += kLlWarps) {
      const int expert = b + (g0 + k) * grid;
      const int holder_rank = expert / l.num_local_experts;
      void* holder = holder_of[k];
      if (holder == nullptr) continue;  // masked
      std::int64_t count = filled[k];
      if (count > l.max_tokens) {
        // NOTE: a source owns T rows of each expert; only a token naming an expert twice can exceed
        // them. The extra rows are dropped, never written out of bounds.
        if (lane == 0)
          report_failure(v.status, StatusCode::kRegionTooSmall, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         holder_rank, l.max_tokens, count);
        count = l.max_tokens;
      }
      std::int32_t* count_slot = l.sel_count(holder, parity, me) + expert;
      if (lane == 0) *count_slot = static_cast<std::int32_t>(count);
      if constexpr (Peers::kStagesLocally) {
        if (ll_by_put<Peers>(v, holder_rank)) {
          __syncwarp();
          std::int32_t* list = l.sel(holder, parity, me, expert);
          if (count > 0)
            Peers::put_warp(v, list, list, sizeof(std::int32_t) * static_cast<std::size_t>(count),
                            holder_rank);
          if (lane == 0) Peers::put(v, count_slot, count_slot, sizeof(std::int32_t), holder_rank);
        }
      }
    }
    __syncthreads();  // the next group resets `filled` and `holder_of`
  }
}

}  // namespace

}  // namespace epcomm
