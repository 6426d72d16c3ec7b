// Low-latency dispatch, receive phase (ll_dispatch.cuh has the kernel; ll_args.hpp the protocol):
// the rows' layout from the lists' lengths, then the copies of the staged tokens into the outputs
// by all warps of the grid. Definitions in an unnamed namespace, one private copy per including
// translation unit.
#pragma once

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

constexpr int kCopyUnroll = 8;  // 16-byte loads in flight per lane
// Scale words of one row a lane copies (<= kLlMaxHidden / kLlScaleBlock words over 32 lanes).
constexpr int kScaleWordsPerLane = static_cast<int>(kLlMaxHidden / kLlScaleBlock + 31) / 32;

// One warp copies batch `batch` (32 x kCopyUnroll pieces of 16 bytes) of staged token t of source s
// into packed row `row` of local expert e.
// NOTE: every read of the staging in the receive phase (here, the list entries and counts) must
// have its value used before the block's credit (ll_give_credits: an unordered add); a look-ahead
// load, or a cp.async without its wait, before the credit would let a sender overwrite what it
// has yet to read.
__device__ void copy_row(const LlDispatchArgs& a, int parity, int s, std::int64_t t, int e, std::int64_t row,
                         int slot, int batch) {
  const LlLayout& l = a.layout;
  void* ws = a.workspace;
  const int lane = threadIdx.x % 32;
  const std::int64_t row_bytes = a.use_fp8 ? l.hidden : l.hidden * 2;
  const std::int64_t out_row = static_cast<std::int64_t>(e) * l.capacity + row;
  const auto* src = reinterpret_cast<const int4*>(l.staging_x(ws, parity, s, t));
  auto* dst = reinterpret_cast<int4*>(l.recv_x(ws, a.half) + out_row * row_bytes);
  const int pieces = static_cast<int>(row_bytes / 16);
  const int base = batch * 32 * kCopyUnroll;
  // Every load first (the piece's bytes and, with batch 0, the row's scales), then the stores:
  // one round trip to the staging per item.
  int4 r[kCopyUnroll];
#pragma unroll
  for (int u = 0; u < kCopyUnroll; ++u) {
    const int i = base + u * 32 + lane;
    if (i < pieces) r[u] = ptx::ld_v4(src + i);
  }
  const int words = batch != 0 || !a.use_fp8 ? 0 : a.use_ue8m0 ? l.num_scale_words : l.num_scales;
  const std::uint32_t* src_scales = l.staging_scales(ws, parity, s, t);
  std::uint32_t scales[kScaleWordsPerLane];
#pragma unroll
  for (int k = 0; k < kScaleWordsPerLane; ++k)
    if (lane + 32 * k < words) scales[k] = src_scales[lane + 32 * k];
#pragma unroll
  for (int u = 0; u < kCopyUnroll; ++u) {
    const int i = base + u * 32 + lane;
    if (i < pieces) ptx::st_na_v4(dst + i, r[u]);
  }
  if (batch != 0) return;
  // Scales transposed: [nle][words][capacity].
  std::uint32_t* dst_scales = l.recv_scales(ws, a.half);
#pragma unroll
  for (int k = 0; k < kScaleWordsPerLane; ++k)
    if (lane + 32 * k < words)
      dst_scales[(static_cast<std::int64_t>(e) * words + lane + 32 * k) * l.capacity + row] = scales[k];
  if (lane == 0) {
    l.src_info(ws, a.half)[out_row] = static_cast<std::int32_t>(t);
    l.token_rows(ws, a.half, s)[t * l.max_topk + slot] = static_cast<std::int32_t>(out_row);
  }
}

// Every thread of the block: where the rows of each source land among a local expert's rows,
// begin[e * R + s] (the rows of sources before s: the counts every source sent, sel_count or
// tagged_count, clamped to T) and total[e] (shared memory, [nle * R] and [nle]). A thread per
// expert, straight from the counts: one round trip and one barrier. Block b also writes layout_range,
// recv_count and the statistics of experts e = b (mod grid). The direct receive numbers rows per expert and
// needs no more; the staging form's scan_arrivals adds the prefix over experts.
struct SourceRows {
  std::int32_t* begin;
  std::int32_t* total;
};
// The scan over counts read by `load(s, expert)` (a raw word, issued kLoadsAhead at a time) and
// made into counts by `settle(raw, s, expert, ok)` (which may wait for the word; for sources not
// `masked(s)` only). Returns whether this thread's settles all succeeded; no barrier: the caller's
// ends the scan (shared begin and total are read after it), then add_scan_stats.
template <typename Masked, typename Load, typename Settle>
__device__ bool scan_counts_by(const LlDispatchArgs& a, const SourceRows& r, Masked masked, Load load,
                               Settle settle) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  void* ws = a.workspace;
  const int R = v.num_domain_ranks, nle = l.num_local_experts;
  const int expert0 = v.rank * nle;
  constexpr int kLoadsAhead = 8;  // sources whose counts a thread loads before it adds them
  bool ok = true;
  for (int e = threadIdx.x; e < nle; e += blockDim.x) {
    const bool writes = e % static_cast<int>(gridDim.x) == static_cast<int>(blockIdx.x);
    std::int32_t rows = 0;
    for (int s0 = 0; s0 < R; s0 += kLoadsAhead) {
      decltype(load(0, 0)) n[kLoadsAhead];
      bool live[kLoadsAhead];
#pragma unroll
      for (int u = 0; u < kLoadsAhead; ++u) {
        const int s = s0 + u;
        // A masked source sent nothing: whatever its count slot holds is stale.
        live[u] = s < R && !masked(s);
        n[u] = live[u] ? load(s, expert0 + e) : decltype(load(0, 0)){0};
      }
#pragma unroll
      for (int u = 0; u < kLoadsAhead; ++u) {
        const int s = s0 + u;
        if (s >= R) break;
        const std::int32_t sent = live[u] ? settle(n[u], s, expert0 + e, ok) : 0;
        const std::int32_t count = min(max(sent, 0), static_cast<std::int32_t>(l.max_tokens));
        r.begin[e * R + s] = rows;
        if (writes)
          l.layout_range(ws, a.half)[static_cast<std::int64_t>(e) * R + s] =
              (static_cast<std::int64_t>(rows) << 32) | count;
        rows += count;
      }
    }
    r.total[e] = rows;
    if (writes) l.recv_count(ws, a.half)[e] = rows;
  }
  return ok;
}
// After the barrier that ends a scan every thread of which succeeded (a failed wait adds none, as
// in the form whose receive stops before its scan): block b adds the totals of its experts
// e = b (mod grid) to the statistics, each thread its own experts'.
__device__ __forceinline__ void add_scan_stats(const LlDispatchArgs& a, const SourceRows& r) {
  if (a.stats == nullptr) return;
  for (int e = threadIdx.x; e < a.layout.num_local_experts; e += blockDim.x)
    if (e % static_cast<int>(gridDim.x) == static_cast<int>(blockIdx.x)) atomicAdd(a.stats + e, r.total[e]);
}
__device__ void scan_sources(const LlDispatchArgs& a, int parity, const SourceRows& r) {
  const LlLayout& l = a.layout;
  scan_counts_by(
      a, r, [&](int s) { return peer_masked(a.view, s); },
      [&](int s, int expert) { return l.sel_count(a.workspace, parity, s)[expert]; },
      [](std::int32_t n, int, int, bool&) { return n; });
  __syncthreads();
  add_scan_stats(a, r);
}
// The same from the direct dispatch's tagged counts, without the barrier: each count read as soon
// as its word carries this operation's tag. False when a wait for one failed (reported).
// `masked`: the block's copy of the mask (store_mask_copy).
__device__ bool scan_tagged_counts(const LlDispatchArgs& a, int parity, std::uint64_t seq,
                                   const SourceRows& r, const std::uint8_t* masked) {
  const LlLayout& l = a.layout;
  return scan_counts_by(
      a, r, [&](int s) { return masked[s] != 0; },
      [&](int s, int expert) { return ptx::ld_relaxed_sys(l.tagged_count(a.workspace, parity, s) + expert); },
      [&](std::uint64_t word, int s, int expert, bool& ok) {
        if (!ll_word_is_of(word, seq)) {
          std::uint64_t polled_ns = 0;
          if (!wait_op_word(l.tagged_count(a.workspace, parity, s) + expert, seq, a.view, OpId::kLlDispatch,
                            CounterId::kRowsArrived, a.view.domain_base_rank + s, word, polled_ns)) {
            ok = false;
            return std::int32_t{0};
          }
          // Telemetry: one wait per source and call (block 0's thread of the first local expert),
          // not one per thread and block.
          if (polled_ns != 0 && blockIdx.x == 0 && expert == a.view.rank * l.num_local_experts)
            count_wait(a.view, OpId::kLlDispatch, a.view.domain_base_rank + s, polled_ns);
        }
        return static_cast<std::int32_t>(ll_word_bits(word));
      });
}

// The receive phase's shared view of what arrived, computed by every block alike: begin[e * R + s]
// = the first row of local expert e that source s's list fills (an exclusive prefix over the
// sources, per expert), and first[e] = expert e's first row in the flattened order of all experts'
// rows (first[nle] = all rows).
struct RecvLayout {
  std::int32_t* begin;  // [nle * R + 1]
  std::int32_t* first;  // [nle + 1]
};

// Every thread of the block: scan_sources (begin, each expert's total into first, and block b's
// layout_range, recv_count and statistics), then first[] as the exclusive prefix over experts.
__device__ void scan_arrivals(const LlDispatchArgs& a, int parity, const RecvLayout& r) {
  const int nle = a.layout.num_local_experts, lane = threadIdx.x % 32;
  scan_sources(a, parity, SourceRows{r.begin, r.first});
  // first[]: exclusive prefix over experts, by the whole block, a thread per expert (a pass per
  // kLlThreads experts): each warp scans its 32 by shuffles, then adds the totals of the warps
  // before it. Each thread reads and writes only its own expert's entry.
  __shared__ std::int32_t warp_total[kLlWarps];
  const int warp = static_cast<int>(threadIdx.x / 32);
  std::int32_t carry = 0;  // the same in every thread: the experts of earlier passes
  for (int e0 = 0; e0 < nle; e0 += kLlThreads) {
    const int e = e0 + static_cast<int>(threadIdx.x);
    const std::int32_t n = e < nle ? r.first[e] : 0;
    std::int32_t incl = n;
    for (int off = 1; off < 32; off <<= 1) {
      const std::int32_t y = __shfl_up_sync(kLlFullMask, incl, off);
      if (lane >= off) incl += y;
    }
    if (lane == 31) warp_total[warp] = incl;
    __syncthreads();
    std::int32_t before = carry + incl - n;
    for (int w = 0; w < kLlWarps; ++w) {
      if (w < warp) before += warp_total[w];
      carry += warp_total[w];
    }
    if (e < nle) r.first[e] = before;
    __syncthreads();  // warp_total is read by all before the next pass writes it
  }
  if (threadIdx.x == 0) r.first[nle] = carry;
  __syncthreads();
}

// The local expert holding flattened row g: the largest e with first[e] <= g.
__device__ __forceinline__ int expert_of(const std::int32_t* first, int nle, std::int32_t g) {
  int lo = 0, hi = nle - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (first[mid] <= g)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// All warps of the grid take (row, batch) items over every local expert's rows: row i of expert e
// is entry i - begin of its source's list, whose staged token the warp copies.
__device__ void run_receive(const LlDispatchArgs& a, int parity, std::int32_t* smem) {
  const LlLayout& l = a.layout;
  const int R = a.view.num_domain_ranks, nle = l.num_local_experts;
  const RecvLayout r{smem, smem + nle * R + 1};
  scan_arrivals(a, parity, r);
  const std::int64_t row_bytes = a.use_fp8 ? l.hidden : l.hidden * 2;
  const int batches = static_cast<int>((row_bytes / 16 + 32 * kCopyUnroll - 1) / (32 * kCopyUnroll));
  const std::int64_t items = static_cast<std::int64_t>(r.first[nle]) * batches;
  const std::int64_t num_warps = static_cast<std::int64_t>(gridDim.x) * kLlWarps;
  const int expert0 = a.view.rank * nle;
  for (std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32; item < items;
       item += num_warps) {
    const LlSplit gb = ll_split(item, batches);
    const std::int32_t g = gb.quot;
    const int e = expert_of(r.first, nle, g);
    const std::int32_t i = g - r.first[e];
    int s = 0;
    while (s + 1 < R && r.begin[e * R + s + 1] <= i) ++s;
    const std::int32_t entry = l.sel(a.workspace, parity, s, expert0 + e)[i - r.begin[e * R + s]];
    const std::int64_t t = ll_selection_token(entry);
    if (t < l.max_tokens) copy_row(a, parity, s, t, e, i, ll_selection_slot(entry), gb.rem);
  }
}

}  // namespace

}  // namespace epcomm
