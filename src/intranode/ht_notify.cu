// notify: the count exchange that opens a (non-cached) high-throughput dispatch. One block.
#include <climits>
#include <cstdint>

#include "buffer/barrier.cuh"
#include "core/call_signature.cuh"
#include "intranode/ht_args.hpp"
#include "core/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kNotifyThreads = 1024;
constexpr int kWarps = kNotifyThreads / 32;

// What source s leaves in destination p's mailbox, after a 64-byte header holding the epoch flag
// (bytes 0-7) and s's call signature (bytes 32-63, written before the flag):
//   [count_row: G int32][chunk counts for p: C int32][expert counts for p's experts: nle int32]
// Zeroes this rank's progress counters of channels [0, C) of every source; peers write them only
// after the exchange or barrier that follows. Also zeroes the dispatch receivers' copied-row counts
// (recv_copied, [G][C], when given), read only by the kernel that follows on the stream.
__device__ void zero_counters(const DomainView& v, int C, std::int32_t* recv_copied) {
  for (int s = 0; s < v.num_domain_ranks; ++s) {
    std::uint64_t* progress = RegionLayout::progress(v.peer_base[v.domain_rank], s, 0);
    for (int c = threadIdx.x; c < C; c += blockDim.x) progress[c] = 0;
  }
  if (recv_copied != nullptr)
    for (int i = threadIdx.x; i < v.num_domain_ranks * C; i += blockDim.x) recv_copied[i] = 0;
}

struct Mailbox {
  static constexpr int kSignatureOffset = 32;
  static_assert(kSignatureOffset + sizeof(CallSignature) <= 64, "the signature sits in the header");
  std::uint64_t* flag;
  CallSignature* signature;
  std::int32_t* count_row;
  std::int32_t* chunk_count;
  std::int32_t* expert_count;
  __device__ Mailbox(char* base, int G, int C) {
    flag = reinterpret_cast<std::uint64_t*>(base);
    signature = reinterpret_cast<CallSignature*>(base + kSignatureOffset);
    count_row = reinterpret_cast<std::int32_t*>(base + 64);
    chunk_count = count_row + G;
    expert_count = chunk_count + C;
  }
};

// Exclusive prefix sums of N values per thread across the block (N independent scans at the cost
// of one: three block barriers): on return v[k] holds the sum of v[k] over the threads before this
// one, and total[k] the sum over all. Every thread of the block must call it.
template <int N>
__device__ void block_exclusive_scan(std::int32_t (&v)[N], std::int32_t (&total)[N]) {
  static_assert(N <= kWarps, "one warp scans each column's warp sums");
  __shared__ std::int32_t warp_sums[N][kWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
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
  __syncthreads();
  if (warp < N) {
    std::int32_t w = warp_sums[warp][lane];  // kWarps == 32
    for (int off = 1; off < 32; off <<= 1) {
      const std::int32_t y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += y;
    }
    warp_sums[warp][lane] = w;  // inclusive over warps
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < N; ++k) {
    total[k] = warp_sums[k][kWarps - 1];
    v[k] = (warp > 0 ? warp_sums[k][warp - 1] : 0) + incl[k] - v[k];
  }
  __syncthreads();  // warp_sums is reused by the next call
}

// Scans the columns d of is_token_in_rank with the whole block (thread i owns a contiguous run of
// tokens), kColumns at a time (a token's flags for them are adjacent bytes, and their prefix sums
// share one block scan): send_slot[t][d] = rows to d before t (or -1), and chunk_start[d][c] =
// rows to d before channel c (c = 0..C; chunk_start[d][C] is the total).
// A masked destination's column counts as false whatever is_token_in_rank says (SPEC "Rank
// masking": dispatch sends nothing to it).
template <int kScanColumns>
__device__ void scan_columns_by(const HtNotifyArgs& a, int G, int C, std::int32_t* sent_total) {
  static_assert(kWarps == 32, "block_exclusive_scan assumes 32 warps");
  const std::int64_t T = a.num_tokens, tpc = a.tokens_per_channel;
  const std::int64_t per_thread = (T + kNotifyThreads - 1) / kNotifyThreads;
  const std::int64_t t0 = min(T, per_thread * threadIdx.x), t1 = min(T, t0 + per_thread);
  for (int d0 = 0; d0 < G; d0 += kScanColumns) {
    const int n = min(kScanColumns, G - d0);
    bool live[kScanColumns];
#pragma unroll
    for (int k = 0; k < kScanColumns; ++k) live[k] = k < n && !peer_masked(a.view, d0 + k);
    std::int32_t before[kScanColumns] = {};
    for (std::int64_t t = t0; t < t1; ++t) {
      const bool* flags = a.is_token_in_rank + t * G + d0;
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k)
        if (k < n) before[k] += live[k] && flags[k] ? 1 : 0;
    }
    std::int32_t total[kScanColumns];
    block_exclusive_scan(before, total);
    if (threadIdx.x == 0)
      for (int k = 0; k < n; ++k) sent_total[d0 + k] = total[k];
    for (std::int64_t t = t0; t < t1; ++t) {
      const bool* flags = a.is_token_in_rank + t * G + d0;
      std::int32_t* slots = a.send_slot + t * G + d0;
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k) {
        if (k >= n) continue;
        const bool in = live[k] && flags[k];
        if (t % tpc == 0) a.chunk_start[(d0 + k) * (C + 1) + t / tpc] = before[k];
        slots[k] = in ? before[k] : -1;
        before[k] += in ? 1 : 0;
      }
    }
    // Channels that start at or past the last token are empty.
    for (int c = threadIdx.x; c <= C; c += blockDim.x) {
      if (c * tpc < T) continue;
#pragma unroll
      for (int k = 0; k < kScanColumns; ++k)
        if (k < n) a.chunk_start[(d0 + k) * (C + 1) + c] = total[k];
    }
  }
}

// The narrowest pass that takes every column at once, up to 8 at a time (a wider scan costs more
// per pass: 8 columns cost ~2 us more than one on one rank).
// sent_total[d] (shared) gets this rank's rows to d.
__device__ void scan_columns(const HtNotifyArgs& a, int G, int C, std::int32_t* sent_total) {
  if (G == 1)
    scan_columns_by<1>(a, G, C, sent_total);
  else if (G == 2)
    scan_columns_by<2>(a, G, C, sent_total);
  else if (G <= 4)
    scan_columns_by<4>(a, G, C, sent_total);
  else
    scan_columns_by<8>(a, G, C, sent_total);
}

__global__ void __launch_bounds__(kNotifyThreads, 1) ht_notify_kernel(HtNotifyArgs a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, C = a.num_channels, me = v.domain_rank, nle = a.num_local_experts;
  const HtHostCounts slots{nle, G};  // where the host's copies of the counts go
  __shared__ std::uint64_t epoch;
  __shared__ std::int32_t sent_total[kMaxDomainRanks];
  __shared__ bool live_peer[kMaxDomainRanks];  // not masked; read once (the loops below test it often)
  if (threadIdx.x == 0) epoch = *a.notify_epoch + 1;
  for (int p = threadIdx.x; p < G; p += blockDim.x) live_peer[p] = !peer_masked(v, p);

  // Zero this rank's progress flags; peers write them only after this exchange.
  zero_counters(v, C, a.recv_copied);
  scan_columns(a, G, C, sent_total);
  __syncthreads();
  if (a.host_counts != nullptr && a.copy_chunks > 0) {
    // This rank's rows to each rank before each chunk boundary: the host's copy plan.
    const int K = a.copy_chunks;
    std::int32_t* prefix = a.host_counts + slots.send_prefix();
    for (int i = threadIdx.x; i < G * (K + 1); i += blockDim.x)
      prefix[i] = a.chunk_start[(i / (K + 1)) * (C + 1) + copy_chunk_channel(i % (K + 1), K, C)];
  }
  const int parity = static_cast<int>(epoch & 1u);

  // Fill my mailbox in every peer's region, each field in one pass over all peers (its loads in
  // flight at once: a pass per peer cost ~3 dependent round trips per peer).
  // Nothing goes to a masked peer, and nothing it left here is read (its counts are zeros below).
  auto box = [&](int p) { return Mailbox(RegionLayout::mailbox(v.peer_base[p], parity, me), G, C); };
  auto live = [&](int p) { return live_peer[p]; };  // visible: block barriers came since
  for (int p = threadIdx.x; p < G; p += blockDim.x)
    if (live(p)) store_signature(box(p).signature, a.signature);
  for (int i = threadIdx.x; i < G * G; i += blockDim.x)
    if (live(i / G)) box(i / G).count_row[i % G] = sent_total[i % G];
  for (int i = threadIdx.x; i < G * C; i += blockDim.x) {
    const std::int32_t* start = a.chunk_start + (i / C) * (C + 1) + i % C;
    if (live(i / C)) box(i / C).chunk_count[i % C] = start[1] - start[0];
  }
  for (int i = threadIdx.x; i < G * nle; i += blockDim.x)
    if (live(i / nle)) box(i / nle).expert_count[i % nle] = a.num_tokens_per_expert[i];
  __syncthreads();
  bool ok = true;
  if (threadIdx.x < G && live(threadIdx.x)) {
    const int p = threadIdx.x;
    // NOTE: a release after the block barrier: every thread's mailbox writes precede the flag.
    ptx::st_release_sys(Mailbox(RegionLayout::mailbox(v.peer_base[p], parity, me), G, C).flag, epoch);
    Mailbox mine(RegionLayout::mailbox(v.peer_base[me], parity, p), G, C);
    ok = wait_at_least(mine.flag, epoch, v, OpId::kNotify, CounterId::kCountsReady, v.domain_base_rank + p);
    // A peer that made another call (shape, top-k, num_sms...) laid out its counts differently:
    // stop here, as after a timeout, rather than route rows by them.
    if (ok) ok = signature_matches(mine.signature, a.signature, v, OpId::kDispatch, v.domain_base_rank + p);
  }
  ok = __syncthreads_and(ok);
  if (threadIdx.x == 0) *a.notify_epoch = epoch;
  if (!ok) {
    // NOTE: kernels queued behind notify before the host sees this failure (zero-copy's early
    // launch, the copy engine's packs) must not forward rows by counts that were never exchanged:
    // counts no region can hold stop them in their guard (ht_guard.cuh) before they write.
    for (int i = threadIdx.x; i < G * G; i += blockDim.x) a.count_matrix[i] = INT32_MAX;
    return;
  }

  // Every source's counts are here: where each source's rows and chunks land on this rank.
  for (int i = threadIdx.x; i < G * G; i += blockDim.x) {
    const int s = i / G, r = i % G;
    // Rows from or to a masked rank are none, whatever its mailbox holds.
    const std::int32_t n = live(s) && live(r)
                               ? Mailbox(RegionLayout::mailbox(v.peer_base[me], parity, s), G, C).count_row[r]
                               : 0;
    a.count_matrix[i] = n;
    if (a.host_counts != nullptr) a.host_counts[slots.count_matrix() + i] = n;
  }
  {
    // Rows land source-major, then channel by channel: a block scan over the flattened (s, c).
    const std::int64_t items = static_cast<std::int64_t>(G) * C;
    const std::int64_t per_thread = (items + kNotifyThreads - 1) / kNotifyThreads;
    const std::int64_t i0 = min(items, per_thread * threadIdx.x), i1 = min(items, i0 + per_thread);
    auto chunk_count = [&](std::int64_t i) {
      const int s = static_cast<int>(i / C);
      return live(s) ? Mailbox(RegionLayout::mailbox(v.peer_base[me], parity, s), G, C).chunk_count[i % C]
                     : 0;
    };
    std::int32_t row[1] = {0};
    for (std::int64_t i = i0; i < i1; ++i) row[0] += chunk_count(i);
    std::int32_t total[1];
    block_exclusive_scan(row, total);
    for (std::int64_t i = i0; i < i1; ++i) {
      const std::int32_t n = chunk_count(i);
      a.recv_chunk_start[i] = row[0];
      a.recv_chunk_count[i] = n;
      row[0] += n;
    }
    if (threadIdx.x == 0) {
      *a.num_recv = total[0];
      if (a.host_counts != nullptr) a.host_counts[HtHostCounts::kTotal] = total[0];
    }
  }
  for (int e = threadIdx.x; e < nle; e += blockDim.x) {
    std::int32_t n = 0;
    for (int s = 0; s < G; ++s)
      if (live(s)) n += Mailbox(RegionLayout::mailbox(v.peer_base[me], parity, s), G, C).expert_count[e];
    n = (n + a.expert_alignment - 1) / a.expert_alignment * a.expert_alignment;
    a.num_recv_per_expert[e] = n;
    if (a.host_counts != nullptr) a.host_counts[slots.per_expert() + e] = n;
  }
  if (a.host_ready == nullptr) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    // NOTE: a release after the block barrier: every thread's host counts precede the word.
    ptx::st_release_sys(a.host_ready, a.host_ready_seq);
  }
}

// Zeroes this rank's progress counters, then a barrier: no peer writes them for the next operation
// before they are zero.
__global__ void __launch_bounds__(kNotifyThreads, 1)
    ht_prepare_kernel(DomainView v, int num_channels, std::int32_t* recv_copied, OpId op) {
  zero_counters(v, num_channels, recv_copied);
  __syncthreads();
  domain_barrier_block(v, op);
}

}  // namespace

void launch_ht_notify(const HtNotifyArgs& args, void* stream) {
  ht_notify_kernel<<<1, kNotifyThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

void launch_ht_prepare(const DomainView& view, int num_channels, std::int32_t* recv_copied, OpId op,
                       void* stream) {
  ht_prepare_kernel<<<1, kNotifyThreads, 0, static_cast<cudaStream_t>(stream)>>>(view, num_channels,
                                                                                 recv_copied, op);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
