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

// Block b builds the lists of experts b, b + grid, b + 2 grid, ... (every block builds some, so no
// block's lists are the send phase's tail): per round, each thread reads kListSpan top-k ids; per
// expert, each warp counts its hits by a ballot, and a hit's place in the list is the expert's
// entries of earlier rounds, plus those of the round's earlier spans, warps and lanes, so every
// list comes out in index order (token order, then slot order: the reference's) with no atomics.
// A list and its length go into the expert's holder (a staging policy: into this rank's own
// workspace, then puts them). Entries outside [-1, E) are reported (by block 0); selections beyond
// T of one expert (a token naming it twice) are reported and dropped. A masked holder gets no
// list: its experts' slots behave as -1 (SPEC "Rank masking").
//
// When a block's lists take one pass (one group of experts, one round of ids: ll-dsv3 and every
// smaller shape) and peers are reached by stores, the places are found before the credit wait
// (plan_selections: nothing in it touches a peer's staging), and only the stores follow the rows.
// Otherwise the whole pass runs after the rows (send_selections).

// The list builder's shared memory, one per block.
struct ListShared {
  // A round's hits per (span, expert of the group, warp), by round parity: a round's counts are
  // still summed into `filled` while the next round's are written.
  std::int32_t hits_of[2][kListSpan][kListGroup][kLlWarps];
  std::int32_t filled[kListGroup];  // entries of each expert of the group, rounds so far
  // The workspace each expert of the group's list goes into (its holder's, or this rank's own for
  // a holder reached by puts); null for a masked holder. Decided once per group, not per hit.
  void* holder_of[kListGroup];
};

// One round's view of this thread's ids: the list of the group each joins (-1: none) and its
// place there.
struct RoundPlaces {
  std::int64_t e[kListSpan];  // the ids, as loaded
  int k[kListSpan];
  std::int64_t at[kListSpan];
  // Block 0's first group: an id outside [-1, E) and its index in topk_idx (-1: none), reported by
  // store_round.
  std::int64_t bad_id = 0;
  int bad_index = -1;
};

// Experts this block builds lists for (b, b + grid, ...). Block-uniform.
__device__ __forceinline__ int experts_of_block(const LlLayout& l) {
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  return b < l.num_experts ? (l.num_experts - b + grid - 1) / grid : 0;
}

// The group's holders, and `filled` cleared (threads < group).
template <typename Peers>
__device__ void open_group(const LlDispatchArgs& a, ListShared& sh, int g0, int group) {
  if (static_cast<int>(threadIdx.x) >= group) return;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int holder_rank = (b + (g0 + static_cast<int>(threadIdx.x)) * grid) / a.layout.num_local_experts;
  void* holder = nullptr;
  if (!peer_masked(a.view, holder_rank))
    holder = ll_by_put<Peers>(a.view, holder_rank) ? a.workspace : Peers::target(a.view, a.workspace, holder_rank);
  sh.filled[threadIdx.x] = 0;
  sh.holder_of[threadIdx.x] = holder;
}

// Issues the loads of this thread's ids of the round at `base` (-1 past the last).
__device__ __forceinline__ void load_round_ids(const LlDispatchArgs& a, int n, int base, RoundPlaces& p) {
#pragma unroll
  for (int u = 0; u < kListSpan; ++u) {
    const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
    p.e[u] = i < n ? ll_load_expert(a.topk_idx, a.idx_bytes, i) : -1;
  }
}

// The places of the round's ids (loaded into p.e) in the lists of group [g0, g0 + group); on
// return `filled` counts this round too. Every thread of the block calls it.
__device__ void place_round(const LlDispatchArgs& a, ListShared& sh, int g0, int group, int base, int round,
                            RoundPlaces& p) {
  const LlLayout& l = a.layout;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32);
  const unsigned lanes_before = (1u << lane) - 1u;
  const int r = round & 1;
  int before[kListSpan];  // each id's hits in the lanes before this one
#pragma unroll
  for (int u = 0; u < kListSpan; ++u) {
    const std::int64_t e = p.e[u];
    // NOTE: reported after the credit wait (store_round): placed before it, a report here would
    // win over the wait's own timeout, which names the lost peer (and lets mask_on_timeout act).
    if ((e < -1 || e >= l.num_experts) && b == 0 && g0 == 0 && p.bad_index < 0) {
      p.bad_id = e;
      p.bad_index = base + u * kLlThreads + static_cast<int>(threadIdx.x);
    }
    p.k[u] = -1;
    if (e >= b && e < l.num_experts) {
      const LlSplit q = ll_split(e - b, grid);
      if (q.rem == 0 && q.quot >= g0 && q.quot - g0 < group) p.k[u] = q.quot - g0;
    }
    before[u] = 0;
    for (int j = 0; j < group; ++j) {
      const unsigned hits = __ballot_sync(kLlFullMask, p.k[u] == j);
      if (lane == 0) sh.hits_of[r][u][j][warp] = __popc(hits);
      if (p.k[u] == j) before[u] = __popc(hits & lanes_before);
    }
  }
  __syncthreads();  // the round's hits are counted; `filled` holds the earlier rounds'
#pragma unroll
  for (int u = 0; u < kListSpan; ++u) {
    if (p.k[u] < 0) continue;
    std::int64_t at = sh.filled[p.k[u]] + before[u];
    for (int s = 0; s < u; ++s)
      for (int w = 0; w < kLlWarps; ++w) at += sh.hits_of[r][s][p.k[u]][w];
    for (int w = 0; w < warp; ++w) at += sh.hits_of[r][u][p.k[u]][w];
    p.at[u] = at;
  }
  __syncthreads();  // every place was taken from `filled`
  if (static_cast<int>(threadIdx.x) < group) {
    std::int32_t sum = 0;
    for (int u = 0; u < kListSpan; ++u)
      for (int w = 0; w < kLlWarps; ++w) sum += sh.hits_of[r][u][threadIdx.x][w];
    sh.filled[threadIdx.x] += sum;
  }
}

// Stores this thread's entries of the round at `base` into their lists (in the holders' staging:
// after the credit wait).
__device__ __forceinline__ void store_round(const LlDispatchArgs& a, const ListShared& sh, int parity, int g0,
                                            int base, const RoundPlaces& p) {
  const LlLayout& l = a.layout;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  if (p.bad_index >= 0)
    report_failure(a.view.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, a.view.rank,
                   -1, p.bad_id, p.bad_index / a.num_topk);
#pragma unroll
  for (int u = 0; u < kListSpan; ++u) {
    if (p.k[u] < 0) continue;
    void* holder = sh.holder_of[p.k[u]];
    if (p.at[u] < l.max_tokens && holder != nullptr) {
      const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
      const int t = i / a.num_topk;
      l.sel(holder, parity, a.view.domain_rank, b + (g0 + p.k[u]) * grid)[p.at[u]] =
          ll_pack_selection(t, i - t * a.num_topk);
    }
  }
}

// Once every entry of the group's lists is stored (by any thread of the block): each list's length
// into its holder (and, for a holder reached by puts, the list and its length put there).
template <typename Peers>
__device__ void close_group(const LlDispatchArgs& a, ListShared& sh, int parity, int g0, int group) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32), me = v.domain_rank;
  __syncthreads();  // `filled` is final; every entry of the group's lists is written
  if constexpr (Peers::kStagesLocally) {
    // NOTE: other warps of the block wrote the lists this warp puts (ordered here by the block
    // barrier above); one fence per warp that puts any makes them visible to whatever carries
    // the puts (a NIC too).
    bool puts = false;  // warp-uniform
    for (int k = warp; k < group; k += kLlWarps)
      puts |= sh.holder_of[k] != nullptr && ll_by_put<Peers>(v, (b + (g0 + k) * grid) / l.num_local_experts);
    if (puts) ptx::fence_acq_rel_sys();
  }
  for (int k = warp; k < group; k += kLlWarps) {
    const int expert = b + (g0 + k) * grid;
    const int holder_rank = expert / l.num_local_experts;
    void* holder = sh.holder_of[k];
    if (holder == nullptr) continue;  // masked
    std::int64_t count = sh.filled[k];
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
          Peers::put_warp(v, list, list, sizeof(std::int32_t) * static_cast<std::size_t>(count), holder_rank);
        if (lane == 0) Peers::put(v, count_slot, count_slot, sizeof(std::int32_t), holder_rank);
      }
    }
  }
  __syncthreads();  // the next group resets `filled` and `holder_of`
}

// Whether this block's lists are placed before the credit wait (block-uniform): when they take one
// pass, and peers are reached by stores alone. NOTE: with a staging policy the places held across
// the NVSHMEM calls spilled (24 B stored, 108 B loaded, in a trial build): there they are found
// after the rows, as before.
template <typename Peers>
__device__ __forceinline__ bool lists_in_one_pass(const LlDispatchArgs& a) {
  if constexpr (Peers::kStagesLocally) return false;
  const int mine = experts_of_block(a.layout);
  return mine > 0 && mine <= kListGroup && static_cast<int>(a.num_tokens) * a.num_topk <= kLlThreads * kListSpan;
}

// Before the credit wait, for a block whose lists take one pass: the ids' loads. `prepare` is
// what else the block does before the wait (the first row item's loads and cast), run between the
// ids' loads and their use so both round trips overlap. Then the places.
template <typename Peers, typename Prepare>
__device__ void plan_selections(const LlDispatchArgs& a, ListShared& sh, RoundPlaces& p, Prepare prepare) {
  if (!lists_in_one_pass<Peers>(a)) {
    prepare();
    return;
  }
  load_round_ids(a, static_cast<int>(a.num_tokens) * a.num_topk, 0, p);
  open_group<Peers>(a, sh, 0, experts_of_block(a.layout));
  prepare();
  place_round(a, sh, 0, experts_of_block(a.layout), 0, 0, p);
}

// After the rows: the lists. Planned (one pass): the stores and lengths only; otherwise every pass.
template <typename Peers>
__device__ void send_selections(const LlDispatchArgs& a, ListShared& sh, int parity, const RoundPlaces& planned) {
  const int mine = experts_of_block(a.layout);
  if (lists_in_one_pass<Peers>(a)) {
    store_round(a, sh, parity, 0, 0, planned);
    close_group<Peers>(a, sh, parity, 0, mine);
    return;
  }
  // NOTE: 32-bit indices: T * k <= kLlMaxTokensPerRank * kLlMaxTopk fits.
  const int n = static_cast<int>(a.num_tokens) * a.num_topk;
  for (int g0 = 0; g0 < mine; g0 += kListGroup) {
    const int group = min(kListGroup, mine - g0);  // experts b + (g0 + k) * grid, k < group
    open_group<Peers>(a, sh, g0, group);
    int round = 0;
    for (int base = 0; base < n; base += kLlThreads * kListSpan, ++round) {
      RoundPlaces p;
      load_round_ids(a, n, base, p);
      place_round(a, sh, g0, group, base, round, p);
      store_round(a, sh, parity, g0, base, p);
    }
    close_group<Peers>(a, sh, parity, g0, group);
  }
}

}  // namespace

}  // namespace epcomm
