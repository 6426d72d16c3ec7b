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
// Top-k ids each thread takes per round of a pass: a round covers kLlThreads * kListSpan ids.
constexpr int kListSpan = 2;

// Block b builds the lists of experts b, b + grid, b + 2 grid, ... (every block builds some, after
// its rows, so no block's lists are the send phase's tail): per round, each thread reads kListSpan
// top-k ids; per expert, each warp counts its hits by a ballot, and a hit's place in the list is
// the expert's entries of earlier rounds, plus those of the round's earlier spans, warps and
// lanes, so every list comes out in index order (token order, then slot order: the reference's)
// with no atomics. A list and its length go into the expert's holder (a staging policy: into this
// rank's own workspace, then puts them). Entries outside [-1, E) are reported (by block 0);
// selections beyond T of one expert (a token naming it twice) are reported and dropped. A masked
// holder gets no list: its experts' slots behave as -1 (SPEC "Rank masking").
template <typename Peers>
__device__ void send_selections(const LlDispatchArgs& a, int parity) {
  // A round's hits per (span, expert of the group, warp), by round parity: a round's counts are
  // still summed into `filled` while the next round's are written.
  __shared__ std::int32_t hits_of[2][kListSpan][kListGroup][kLlWarps];
  __shared__ std::int32_t filled[kListGroup];  // entries of each expert of the group, rounds so far
  // The workspace each expert of the group's list goes into (its holder's, or this rank's own
  // for a holder reached by puts); null for a masked holder. Decided once per group, not per hit.
  __shared__ void* holder_of[kListGroup];
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32), me = v.domain_rank;
  const unsigned lanes_before = (1u << lane) - 1u;
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
    int round = 0;
    for (int base = 0; base < n; base += kLlThreads * kListSpan, ++round) {
      const int r = round & 1;
      int k[kListSpan];       // the list of the group each id joins, or -1
      int before[kListSpan];  // its hits in the lanes before this one
#pragma unroll
      for (int u = 0; u < kListSpan; ++u) {
        const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
        const std::int64_t e = i < n ? ll_load_expert(a.topk_idx, a.idx_bytes, i) : -1;
        if ((e < -1 || e >= l.num_experts) && b == 0 && g0 == 0)
          report_failure(v.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         -1, e, i / a.num_topk);
        k[u] = -1;
        if (e >= b && e < l.num_experts) {
          const LlSplit q = ll_split(e - b, grid);
          if (q.rem == 0 && q.quot >= g0 && q.quot - g0 < group) k[u] = q.quot - g0;
        }
        before[u] = 0;
        for (int j = 0; j < group; ++j) {
          const unsigned hits = __ballot_sync(kLlFullMask, k[u] == j);
          if (lane == 0) hits_of[r][u][j][warp] = __popc(hits);
          if (k[u] == j) before[u] = __popc(hits & lanes_before);
        }
      }
      __syncthreads();  // the round's hits are counted; `filled` holds the earlier rounds'
#pragma unroll
      for (int u = 0; u < kListSpan; ++u) {
        if (k[u] < 0) continue;
        std::int64_t at = filled[k[u]] + before[u];
        for (int s = 0; s < u; ++s)
          for (int w = 0; w < kLlWarps; ++w) at += hits_of[r][s][k[u]][w];
        for (int w = 0; w < warp; ++w) at += hits_of[r][u][k[u]][w];
        void* holder = holder_of[k[u]];
        if (at < l.max_tokens && holder != nullptr) {
          const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
          const int t = i / a.num_topk;
          l.sel(holder, parity, me, b + (g0 + k[u]) * grid)[at] = ll_pack_selection(t, i - t * a.num_topk);
        }
      }
      __syncthreads();  // every place was taken from `filled`
      if (static_cast<int>(threadIdx.x) < group) {
        std::int32_t sum = 0;
        for (int u = 0; u < kListSpan; ++u)
          for (int w = 0; w < kLlWarps; ++w) sum += hits_of[r][u][threadIdx.x][w];
        filled[threadIdx.x] += sum;
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
