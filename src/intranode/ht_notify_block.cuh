// notify's block: the count exchange that opens a (non-cached) high-throughput dispatch, in one
// block of kNotifyThreads threads: notify's own kernel (ht_notify.cu) or the last block of the fused
// layout-and-notify launch (ht_layout_notify.cu). Definitions in an unnamed namespace, one private
// copy per including translation unit.
//
// One block does the whole exchange, so its time is the sum of its phases, and a phase that computes
// costs its instructions times the 8 warps each scheduler holds. Hence: no 64-bit division on a
// per-token or per-item path (each is a call of ~100 instructions: they were ~25 % of the kernel,
// bench/NOTES.md 11.9), and each mailbox field is stored as soon as it is known (the expert counts
// before the scan, the count row right after it, a chunk's start by the thread that finds it), so
// the exchange waits for no second pass over what the scan wrote.
#pragma once

#include <climits>
#include <cstdint>

#include "buffer/barrier.cuh"
#include "core/call_signature.cuh"
#include "core/fast_divisor.hpp"
#include "core/phase_tracer.cuh"
#include "core/ptx.cuh"
#include "intranode/ht_args.hpp"
#include "intranode/scan_board.cuh"

namespace epcomm {

namespace {

constexpr int kNotifyThreads = 1024;
constexpr int kWarps = kNotifyThreads / 32;

// Zeroes this rank's progress counters of channels [0, C) of every source; peers write them only
// after the exchange or barrier that follows. Also zeroes the dispatch receivers' copied-row counts
// (recv_copied, [G][C], when given), read only by the kernel that follows on the stream. The
// caller's threads take entries first, first + stride, ... (one block's, or a whole grid's).
// One flat loop over the [G][C] entries: a grid's threads past them (most) test one bound and go.
__device__ void zero_counters(const DomainView& v, int C, std::int32_t* recv_copied, int first, int stride) {
  const int n = v.num_domain_ranks * C;
  for (int i = first; i < n; i += stride) {
    const int s = i / C;
    *RegionLayout::progress(v.peer_base[v.domain_rank], s, i - s * C) = 0;
    if (recv_copied != nullptr) recv_copied[i] = 0;
  }
}
__device__ void zero_counters(const DomainView& v, int C, std::int32_t* recv_copied) {
  zero_counters(v, C, recv_copied, static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x));
}

// Which peers take part (not masked: nothing goes to a masked peer, and nothing it left here is
// read), in shared memory: read once, the loops of the exchange test it often.
__shared__ bool notify_live_peer[kMaxDomainRanks];
__device__ void load_live_peers(const DomainView& v) {
  for (int p = threadIdx.x; p < v.num_domain_ranks; p += blockDim.x) notify_live_peer[p] = !peer_masked(v, p);
}

// The part of the exchange that needs neither the counts nor any peer, done ahead by every block of
// the fused launch before it arrives (the progress counters zeroed by the whole grid, each block's
// live peers, the epoch in every thread, the signature stored by block 0), and the send scan (each
// block its own tokens, fused_scan.cuh), so that notify's block starts at the exchange. `epoch`:
// this call's; `last_rows`: the last ticket's words of the scan's board ([kFusedMaxRanks]), whose
// inclusive sums are the rows to each rank; null when nothing was done ahead (notify's own kernel).
struct NotifyAhead {
  std::uint64_t epoch = 0;
  const std::uint64_t* last_rows = nullptr;
  __device__ bool done() const { return last_rows != nullptr; }
};

// What source s leaves in destination p's mailbox, after a 64-byte header holding the epoch flag
// (bytes 0-7) and s's call signature (bytes 32-63, written before the flag):
//   [count_row: G int32][chunk_start: C + 1 int32][expert counts for p's experts: nle int32]
// count_row[r]: s's rows to rank r; chunk_start[c]: s's rows to p before channel c (chunk_start[C]
// is all of them), so channel c brings chunk_start[c + 1] - chunk_start[c] rows.
struct Mailbox {
  static constexpr int kSignatureOffset = 32;
  static_assert(kSignatureOffset + sizeof(CallSignature) <= 64, "the signature sits in the header");
  std::uint64_t* flag;
  CallSignature* signature;
  std::int32_t* count_row;
  std::int32_t* chunk_start;
  std::int32_t* expert_count;
  __device__ Mailbox(char* base, int G, int C) {
    flag = reinterpret_cast<std::uint64_t*>(base);
    signature = reinterpret_cast<CallSignature*>(base + kSignatureOffset);
    count_row = reinterpret_cast<std::int32_t*>(base + 64);
    chunk_start = count_row + G;
    expert_count = chunk_start + C + 1;
  }
};

// The mailboxes of this call (its parity) and which peers take part (not masked: nothing goes to
// a masked peer, and nothing it left here is read).
struct Exchange {
  const DomainView& v;
  int G, C, parity;
  const bool* live_peer;  // shared memory, [G]
  __device__ bool live(int p) const { return live_peer[p]; }
  // This rank's mailbox in peer p's region.
  __device__ Mailbox out(int p) const {
    return Mailbox(RegionLayout::mailbox(v.peer_base[p], parity, v.domain_rank), G, C);
  }
  // Source s's mailbox in this rank's region.
  __device__ Mailbox in(int s) const {
    return Mailbox(RegionLayout::mailbox(v.peer_base[v.domain_rank], parity, s), G, C);
  }
};

// Warps [kFirstWarp, kFirstWarp + kWarpCount) of the block, synchronised by barrier kBarrier (0: the
// whole block's __syncthreads; another id lets the warps outside the group do something else
// meanwhile). thread(): the thread's index within the group.
template <int kWarpCount, int kBarrier, int kFirstWarp = 0>
struct WarpGroup {
  static constexpr int warps = kWarpCount, threads = kWarpCount * 32, first = kFirstWarp * 32;
  static_assert(kFirstWarp + kWarpCount <= kWarps, "the group is part of the block");
  static __device__ int thread() { return static_cast<int>(threadIdx.x) - first; }
  static __device__ bool member() { return static_cast<unsigned>(thread()) < static_cast<unsigned>(threads); }
  static __device__ void sync() {
    if constexpr (kBarrier == 0)
      __syncthreads();
    else
      ptx::bar_sync(kBarrier, threads);
  }
};
using WholeBlock = WarpGroup<kWarps, 0>;
static_assert(WholeBlock::threads == kNotifyThreads);

// Calls f(row, col, index) for this thread's cells of a rows x cols grid (index = row * cols + col
// = the thread's index in Group, + Group::threads, ...): one 32-bit division per thread, none per
// cell.
template <typename Group = WholeBlock, typename F>
__device__ __forceinline__ void for_each_cell(int rows, int cols, F&& f) {
  const int cells = rows * cols;
  const int first = Group::thread();
  if (first >= cells) return;
  int r = first / cols, c = first - r * cols;
  const int dr = Group::threads / cols, dc = Group::threads - dr * cols;
  for (int i = first; i < cells; i += Group::threads) {
    f(r, c, i);
    r += dr;
    c += dc;
    if (c >= cols) {
      c -= cols;
      ++r;
    }
  }
}

// Exclusive prefix sums of N values per thread across the group (N independent scans at the cost
// of one: three barriers): on return v[k] holds the sum of v[k] over the group's threads before
// this one, and total[k] the sum over all. Every thread of the group must call it.
template <typename Group, int N>
__device__ void block_exclusive_scan(std::int32_t (&v)[N], std::int32_t (&total)[N]) {
  static_assert(N <= Group::warps, "one warp of the group scans each column's warp sums");
  __shared__ std::int32_t warp_sums[N][kWarps];
  const int warp = Group::thread() / 32, lane = threadIdx.x % 32;
  std::int32_t incl[N];
#pragma unroll
  for (int k = 0; k < N; ++k) {
    incl[k] = v[k];
    for (int off = 1; off < 32; off <<= 1) {
      const std::int32_t y = __shfl_up_sync(0xffffffffu, incl[k], off);
      if (lane >= off) incl[k] += y;
    }
    if (lane == 31) warp_sums[k][warp] = incl[k];
  }
  Group::sync();
  if (warp < N) {
    std::int32_t w = lane < Group::warps ? warp_sums[warp][lane] : 0;  // kWarps == 32 lanes
    for (int off = 1; off < 32; off <<= 1) {
      const std::int32_t y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += y;
    }
    warp_sums[warp][lane] = w;  // inclusive over warps
  }
  Group::sync();
#pragma unroll
  for (int k = 0; k < N; ++k) {
    total[k] = warp_sums[k][Group::warps - 1];
    v[k] = (warp > 0 ? warp_sums[k][warp - 1] : 0) + incl[k] - v[k];
  }
  Group::sync();  // warp_sums is reused by the next call
}

// notify's phase stamps (NotifyTracePoint, ht_args.hpp): one block, one entry per exchange.
using NotifyTracer = PhaseTracer<kNotifyTraceRing, kNotifyTracePoints>;

// Thread `thread`'s contiguous run of [0, n) among kThreads: the runs of threads 0, 1, ... follow
// each other (the divisor is a constant: no division instruction).
template <int kThreads>
struct ThreadRun {
  std::int64_t begin, end;
  __device__ ThreadRun(std::int64_t n, int thread) {
    const std::int64_t per_thread = (n + kThreads - 1) / kThreads;
    begin = min(n, per_thread * thread);
    end = min(n, begin + per_thread);
  }
};

// Scans the columns d of is_token_in_rank with the whole block, kScanColumns at a time (a token's
// flags for them are adjacent bytes, and their prefix sums share one block scan): send_slot[t][d] =
// rows to d before t (or -1), and chunk_start[d][c] = rows to d before channel c (c = 0..C;
// chunk_start[d][C] is the total), each also stored in d's mailbox, with the count row (rows to
// each d).
// Tokens go to warps in rows of 32: warp w takes a contiguous range of rows, lane l token 32 * row
// + l of each. A row's loads and stores are whole lines (a thread's own run of tokens made every
// store of send_slot span several lines, and the pass waited on the load/store queue: 11.39), and a
// token's place among its row's rows to d is a ballot and a popcount; the block scan runs over the
// warps' counts.
// A masked destination's column counts as false whatever is_token_in_rank says (SPEC "Rank
// masking": dispatch sends nothing to it).
// The first column group's first pass and sums are traced (loaded, summed).
template <int kScanColumns>
__device__ void scan_columns_by(const HtNotifyArgs& a, const Exchange& x, const NotifyTracer& tracer) {
  constexpr int kBatchRows = kScanColumns == 8 ? 2 : 4;  // rows whose flags a warp loads at once
  static_assert(kBatchRows * kScanColumns <= 32, "a batch's flags fit one word");
  const int G = x.G, C = x.C;
  // At most 2^31 - 1 tokens (plan_ht_dispatch), so token indices are int.
  const int T = static_cast<int>(a.num_tokens), tpc = a.tokens_per_channel;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const unsigned lanes_below = (1u << lane) - 1u;
  const int total_rows = (T + 31) / 32, rows_per_warp = (total_rows + kWarps - 1) / kWarps;
  const int row_begin = min(total_rows, warp * rows_per_warp);
  const int row_end = min(total_rows, row_begin + rows_per_warp);
  const FastDivisor channel_of = a.channel_of;
  for (int d0 = 0; d0 < G; d0 += kScanColumns) {
    const int n = min(kScanColumns, G - d0);
    unsigned live = 0;  // bit k: column d0 + k is a live destination
#pragma unroll
    for (int k = 0; k < kScanColumns; ++k)
      if (k < n && x.live(d0 + k)) live |= 1u << k;
    // Calls f(t, in) for this lane's token t of each of the warp's rows in order (bit k of in: t
    // goes to d0 + k; none past the last token), the flags of kBatchRows rows loaded at once.
    auto for_rows = [&](auto&& f) {
      for (int r0 = row_begin; r0 < row_end; r0 += kBatchRows) {
        unsigned in = 0;  // bit j * kScanColumns + k
#pragma unroll
        for (int j = 0; j < kBatchRows; ++j) {
          const int t = (r0 + j) * 32 + lane;
          const bool valid = r0 + j < row_end && t < T;
          const bool* flags = a.is_token_in_rank + static_cast<std::int64_t>(t) * G + d0;
#pragma unroll
          for (int k = 0; k < kScanColumns; ++k)
            if (valid && (live >> k & 1u) != 0 && flags[k]) in |= 1u << (j * kScanColumns + k);
        }
#pragma unroll
        for (int j = 0; j < kBatchRows; ++j)  // the same rows in every lane
          if (r0 + j < row_end) f((r0 + j) * 32 + lane, in >> (j * kScanColumns));
      }
    };
    std::int32_t before[kScanColumns] = {};  // lane 0: the warp's rows to d0 + k
    for_rows([&](int, unsigned in) {
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k) {
        if (k >= n) continue;
        const int rows = __popc(__ballot_sync(0xffffffffu, (in >> k & 1u) != 0));
        if (lane == 0) before[k] += rows;
      }
    });
    if (d0 == 0) tracer.mark(kNotifyTraceLoaded);
    std::int32_t total[kScanColumns];
    block_exclusive_scan<WholeBlock>(before, total);
    // Lane 0's exclusive sum is the rows to d0 + k before this warp's first token.
#pragma unroll
    for (int k = 0; k < kScanColumns; ++k) before[k] = __shfl_sync(0xffffffffu, before[k], 0);
    if (d0 == 0) tracer.mark(kNotifyTraceSummed);
    for (int p = threadIdx.x; p < G; p += kNotifyThreads)
      if (x.live(p)) {
        std::int32_t* row = x.out(p).count_row + d0;
#pragma unroll
        for (int k = 0; k < kScanColumns; ++k)
          if (k < n) row[k] = total[k];
      }
    // A channel's start goes where the token that opens it is counted (or, past the last token,
    // below): to the scratch (the host's copy plan reads it) and to the destination's mailbox.
    auto record_start = [&](int k, int c, std::int32_t rows) {
      a.chunk_start[(d0 + k) * (C + 1) + c] = rows;
      if ((live >> k & 1u) != 0) x.out(d0 + k).chunk_start[c] = rows;
    };
    // Channels that start at or past the last token are empty (before the second pass: total is
    // then no longer live).
    for (int c = threadIdx.x; c <= C; c += kNotifyThreads) {
      if (static_cast<std::int64_t>(c) * tpc < T) continue;
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k)
        if (k < n) record_start(k, c, total[k]);
    }
    for_rows([&](int t, unsigned in) {
      const int c = channel_of.divide(t);
      const bool valid = t < T, opens = valid && c * tpc == t;
      std::int32_t* slots = a.send_slot + static_cast<std::int64_t>(t) * G + d0;
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k) {
        if (k >= n) continue;
        const bool goes = (in >> k & 1u) != 0;
        const unsigned row = __ballot_sync(0xffffffffu, goes);
        const std::int32_t place = before[k] + __popc(row & lanes_below);
        if (opens) record_start(k, c, place);
        if (valid) slots[k] = goes ? place : -1;
        before[k] += __popc(row);
      }
    });
  }
}

// The narrowest pass that takes every column at once, up to 8 at a time (a wider scan costs more
// per pass: 8 columns cost ~2 us more than one on one rank).
__device__ void scan_columns(const HtNotifyArgs& a, const Exchange& x, const NotifyTracer& tracer) {
  if (x.G == 1)
    scan_columns_by<1>(a, x, tracer);
  else if (x.G == 2)
    scan_columns_by<2>(a, x, tracer);
  else if (x.G <= 4)
    scan_columns_by<4>(a, x, tracer);
  else
    scan_columns_by<8>(a, x, tracer);
}

// After a scan done ahead (fused_scan.cuh): the count row and every destination's channel starts
// into the mailboxes, and the starts of the channels past the last token into the scratch.
// `last_rows`: NotifyAhead's. A masked destination gets nothing in its mailbox (its scratch starts
// are all 0: no token goes to it). Traced: `loaded` once the totals are read, `summed` once the count
// rows are stored.
__device__ void copy_scan(const HtNotifyArgs& a, const Exchange& x, const std::uint64_t* last_rows,
                          const NotifyTracer& tracer) {
  const int G = x.G, C = x.C;
  const std::int64_t T = a.num_tokens, tpc = a.tokens_per_channel;
  __shared__ std::int32_t total[kMaxDomainRanks];  // rows to each destination
  for (int d = threadIdx.x; d < G; d += blockDim.x) total[d] = BlockRows::rows(last_rows[d]);
  __syncthreads();
  tracer.mark(kNotifyTraceLoaded);
  for_each_cell(G, G, [&](int p, int d, int) {
    if (x.live(p)) x.out(p).count_row[d] = total[d];
  });
  tracer.mark(kNotifyTraceSummed);
  for_each_cell(G, C + 1, [&](int d, int c, int i) {
    std::int32_t start;
    if (c * tpc < T) {
      start = a.chunk_start[i];
    } else {
      start = total[d];
      a.chunk_start[i] = start;
    }
    if (x.live(d)) x.out(d).chunk_start[c] = start;
  });
}

// After the exchange, two groups of warps side by side, as neither needs the other's outputs:
// CountWarps store the count matrix, the expert counts and the host's copies of them, and their last
// warp releases the host's counts (its system-scope fence waits for their stores over PCIe: ~0.9 us,
// 11.38); PlaceWarps place the received chunks. One after the other they took ~2.7 us (11.51).
using CountWarps = WarpGroup<kWarps / 2, 1>;
using PlaceWarps = WarpGroup<kWarps / 2, 2, kWarps / 2>;

// Where each source's rows land here, source-major, then channel by channel: a scan over the
// flattened (s, c) by PlaceWarps, each thread a contiguous run of it. The run's first kHeld items'
// row counts stay in registers from the sum to the stores (one round trip to the mailboxes).
__device__ void place_received_chunks(const HtNotifyArgs& a, const Exchange& x) {
  constexpr int kHeld = 4;
  const int C = x.C;
  const ThreadRun<PlaceWarps::threads> run(static_cast<std::int64_t>(x.G) * C, PlaceWarps::thread());
  const int i0 = static_cast<int>(run.begin), i1 = static_cast<int>(run.end);
  auto rows_of = [&](int s, int c) -> std::int32_t {
    if (!x.live(s)) return 0;
    const std::int32_t* start = x.in(s).chunk_start;
    return start[c + 1] - start[c];
  };
  // (s, c) of item i, stepped along the run instead of divided per item.
  int s = i0 / C, c = i0 - s * C;
  auto step = [&] {
    if (++c == C) {
      c = 0;
      ++s;
    }
  };
  std::int32_t held[kHeld];
  std::int32_t row[1] = {0};
#pragma unroll
  for (int j = 0; j < kHeld; ++j) {
    held[j] = 0;
    if (i0 + j < i1) {
      held[j] = rows_of(s, c);
      step();
    }
    row[0] += held[j];
  }
  for (int i = i0 + kHeld; i < i1; ++i, step()) row[0] += rows_of(s, c);
  std::int32_t total[1];
  block_exclusive_scan<PlaceWarps>(row, total);
#pragma unroll
  for (int j = 0; j < kHeld; ++j)
    if (i0 + j < i1) {
      a.recv_chunk_start[i0 + j] = row[0];
      a.recv_chunk_count[i0 + j] = held[j];
      row[0] += held[j];
    }
  if (i0 + kHeld < i1) {
    s = (i0 + kHeld) / C;
    c = i0 + kHeld - s * C;
    for (int i = i0 + kHeld; i < i1; ++i, step()) {
      const std::int32_t n = rows_of(s, c);
      a.recv_chunk_start[i] = row[0];
      a.recv_chunk_count[i] = n;
      row[0] += n;
    }
  }
  if (PlaceWarps::thread() == 0) *a.num_recv = total[0];
}

// CountWarps' part after the exchange: the count matrix and the received rows per expert, to the
// device and (where the host waits for them) to the host's mapped copies, with the copy-engine plan
// and the received total. Rows from or to a masked rank are none, whatever its mailbox holds.
__device__ void store_counts(const HtNotifyArgs& a, const Exchange& x) {
  using Group = CountWarps;
  const int G = x.G, C = x.C, nle = a.num_local_experts;
  const HtHostCounts slots{nle, G};  // where the host's copies of the counts go
  const int tid = Group::thread();
  // A host word: the count and this call's tag in one 8-byte store (HtHostCounts).
  auto host = [&](int slot, std::int32_t n) { a.host_counts[slot] = tag_host_count(n, a.host_count_seq); };
  auto count_of = [&](int s, int r) { return x.live(s) && x.live(r) ? x.in(s).count_row[r] : 0; };
  auto expert_sum = [&](int e) {
    std::int32_t n = 0;
#pragma unroll 8
    for (int s = 0; s < G; ++s)
      if (x.live(s)) n += x.in(s).expert_count[e];
    return n;
  };
  // This thread's first count cell and first expert, loaded together before any output is stored:
  // one round trip to the mailboxes, not one per kind of output (a store may alias a later load).
  const std::int32_t first_cell_rows = tid < G * G ? count_of(tid / G, tid % G) : 0;
  const std::int32_t first_expert_rows = tid < nle ? expert_sum(tid) : 0;
  // The host's copy plan (copy-engine dispatch): this rank's rows to each rank before each chunk
  // boundary, from its own scratch (written before the exchange's block barriers); its first cell
  // is loaded with the others.
  const int K = a.copy_chunks;
  const bool copy_plan = a.host_counts != nullptr && K > 0;
  auto plan_entry = [&](int d, int k) { return a.chunk_start[d * (C + 1) + copy_chunk_channel(k, K, C)]; };
  const std::int32_t first_plan =
      copy_plan && tid < G * (K + 1) ? plan_entry(tid / (K + 1), tid % (K + 1)) : 0;
  // The received total for the host, by the group's last warp: the column of the count matrix;
  // place_received_chunks finds the same sum for the device.
  const bool totals = a.host_counts != nullptr && tid / 32 == Group::warps - 1;
  std::int32_t host_total = 0;
  if (totals)
    for (int s = tid % 32; s < G; s += 32) host_total += count_of(s, x.v.domain_rank);
  for_each_cell<Group>(G, G, [&](int s, int r, int i) {
    const std::int32_t n = i == tid ? first_cell_rows : count_of(s, r);
    a.count_matrix[i] = n;
    if (a.host_counts != nullptr) host(slots.count_matrix() + i, n);
  });
  for (int e = tid; e < nle; e += Group::threads) {
    std::int32_t n = e == tid ? first_expert_rows : expert_sum(e);
    if (a.expert_alignment > 1) n = (n + a.expert_alignment - 1) / a.expert_alignment * a.expert_alignment;
    a.num_recv_per_expert[e] = n;
    if (a.host_counts != nullptr) host(slots.per_expert() + e, n);
  }
  if (copy_plan) {
    // Not written when the exchange failed: the host never sees this call's tag then.
    for_each_cell<Group>(G, K + 1, [&](int d, int k, int i) {
      host(slots.send_prefix() + i, i == tid ? first_plan : plan_entry(d, k));
    });
  }
  if (totals) {
    host_total = __reduce_add_sync(0xffffffffu, host_total);
    if (tid % 32 == 0) host(HtHostCounts::kTotal, host_total);
  }
}

// The fused launch's layout part for notify's trace (traced calls): when its first block began, and
// when its last block passed each of its phases (kNotifyTraceTicketed + k).
struct LaunchStamps {
  std::uint64_t launched;
  std::uint64_t last[kFusedTracePhases];
};

// The whole exchange, every thread of a kNotifyThreads-thread block. `launch` (traced calls, read by
// thread 0): the fused launch's stamps (LaunchStamps), null when this block is the whole launch.
// `ahead`: what the fused launch's blocks did before arriving (NotifyAhead), else nothing.
__device__ void ht_notify_block(const HtNotifyArgs& a, const LaunchStamps* launch = nullptr,
                                NotifyAhead ahead = {}) {
  const std::uint64_t entered = a.trace != nullptr ? ptx::globaltimer() : 0;
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, C = a.num_channels, nle = a.num_local_experts;
  // Every thread reads the epoch itself: one broadcast load, no barrier to wait for.
  const std::uint64_t epoch = ahead.done() ? ahead.epoch : *a.notify_epoch + 1;
  const Exchange x{v, G, C, static_cast<int>(epoch & 1u), notify_live_peer};
  // One entry a call whatever the grid (in the fused launch notify is one block of many).
  const NotifyTracer tracer(a.trace, epoch, /*blocks=*/1, /*block=*/0);
  const NotifyTracer place_tracer(a.trace, epoch, /*blocks=*/1, /*block=*/0, /*marker=*/PlaceWarps::first);
  tracer.clear();
  if (launch != nullptr && tracer.stamps != nullptr) {
    tracer.mark(kNotifyTraceLaunch, launch->launched);
    for (int k = 0; k < kFusedTracePhases; ++k) tracer.mark(kNotifyTraceTicketed + k, launch->last[k]);
  } else {
    tracer.mark(kNotifyTraceLaunch, entered);
  }
  tracer.mark(kNotifyTraceEntry, entered);
  // A thread's first cell of each grid below (for_each_cell) is cell tid.
  const int tid = static_cast<int>(threadIdx.x);
  // Its first cell of the expert counts (cell i of G x nle is expert i), loaded before the barrier:
  // its round trip overlaps the epoch's and the zeroing, not the scan's loads.
  const std::int32_t first_count = tid < G * nle ? a.num_tokens_per_expert[tid] : 0;
  if (!ahead.done()) {
    load_live_peers(v);
    // Zero this rank's progress flags; peers write them only after this exchange.
    zero_counters(v, C, a.recv_copied);
  }
  __syncthreads();
  tracer.mark(kNotifyTraceZeroed);
  // What the scan does not decide goes to the peers first.
  if (!ahead.done())
    for (int p = threadIdx.x; p < G; p += blockDim.x)
      if (x.live(p)) store_signature(x.out(p).signature, a.signature);
  for_each_cell(G, nle, [&](int p, int e, int i) {
    if (x.live(p)) x.out(p).expert_count[e] = i == tid ? first_count : a.num_tokens_per_expert[i];
  });
  if (ahead.done())
    copy_scan(a, x, ahead.last_rows, tracer);
  else
    scan_columns(a, x, tracer);
  __syncthreads();
  tracer.mark(kNotifyTraceScanned);
  // The fused launch's scratch counts were all read above (before the scan): zero for the next call.
  if (a.clear_counts != nullptr)
    for (int i = tid; i < G * nle; i += blockDim.x) a.clear_counts[i] = 0;

  bool ok = true;
  // Thread p: peer p. Not this rank itself: its own mailbox was written by this block, whose
  // barrier above (and the one below) orders those writes before any read of them, so it needs no
  // flag, no system-scope release and no wait (~1.8 us on one rank, NOTES 11.38).
  const bool exchanges =
      threadIdx.x < G && x.live(threadIdx.x) && static_cast<int>(threadIdx.x) != v.domain_rank;
  // NOTE: a release after the block barrier: every thread's mailbox writes precede the flag.
  if (exchanges) ptx::st_release_sys(x.out(threadIdx.x).flag, epoch);
  tracer.mark(kNotifyTraceReleased);
  if (exchanges) {
    const int p = threadIdx.x;
    const Mailbox mine = x.in(p);
    ok = wait_at_least(mine.flag, epoch, v, OpId::kNotify, CounterId::kCountsReady, v.domain_base_rank + p);
    // A peer that made another call (shape, top-k, num_sms...) laid out its counts differently:
    // stop here, as after a timeout, rather than route rows by them.
    if (ok) ok = signature_matches(mine.signature, a.signature, v, OpId::kDispatch, v.domain_base_rank + p);
  }
  ok = __syncthreads_and(ok);
  tracer.mark(kNotifyTraceFlagsSeen);
  if (threadIdx.x == 0) *a.notify_epoch = epoch;
  if (!ok) {
    // NOTE: kernels queued behind notify before the host sees this failure (zero-copy's early
    // launch, the copy engine's packs) must not forward rows by counts that were never exchanged:
    // counts no region can hold stop them in their guard (ht_guard.cuh) before they write.
    for (int i = threadIdx.x; i < G * G; i += blockDim.x) a.count_matrix[i] = INT32_MAX;
    return;
  }

  if (PlaceWarps::member()) {
    place_received_chunks(a, x);
    place_tracer.mark(kNotifyTracePlaced);
  } else {
    // The host's words carry their call's tag: no flag and no system-scope fence after them.
    store_counts(a, x);
    tracer.mark(kNotifyTraceCountsStored);
  }
  if (a.trace != nullptr) {
    __syncthreads();  // traced calls only: exit is when every warp is done
    tracer.mark(kNotifyTraceExit);
  }
}

}  // namespace

}  // namespace epcomm
