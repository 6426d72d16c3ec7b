// High-throughput combine within one NVLink domain (see ht_args.hpp for the protocol).
//
// Blocks [0, S) move rows: for every source rank s, warp w (of S * kWarps shares) takes its share
// of the rows this rank received from s (a contiguous block of x) and, releasing after each few
// rows how many of its share are done,
//  - push (the default): writes them into s's region, where they land at [rows s sent to ranks
//    before me] + j;
//  - pull: stages them in this rank's own region at the index they have in x, for s to read over
//    NVLink (a local copy: the transfer becomes the reducers' reads, which overlap the reduction).
//    When the copy engine staged them before the kernel (`staged`), block 0 only publishes each
//    source's whole count and every block reduces.
//  - copy-engine push (`copy_pushed`): the peers' copy engines write each share into this rank's
//    region and publish it while the kernel runs; every block reduces, taking its tokens from each
//    of `reduce_segments` slices of the token range in turn, the order in which the shares land.
// Reducers: each warp takes a contiguous range of this rank's tokens and sums, in float32 and in a
// fixed order (bias0, bias1, then ranks ascending), the rows of every rank that received each
// token, waiting for each row's share; local rows are read from x directly. Rows stream through
// shared memory (cp.async, several chunks per warp in flight), since the reduction is bound by the
// bytes an SM keeps in flight. Phased schedule (the default): every block moves rows, then
// reduces. Overlapped schedule: blocks [S, grid) reduce from the start.
#include <cuda_bf16.h>

#include <cstdint>

#include "core/bf16_sum.cuh"
#include "core/copy.cuh"
#include "core/cuda_check.hpp"
#include "core/func_attributes.hpp"
#include "core/pdl.cuh"
#include "core/wait.cuh"
#include "intranode/ht_args.hpp"
#include "intranode/ht_guard.cuh"

namespace epcomm {

namespace {

constexpr int kWarps = kHtWarpsPerBlock;
constexpr int kThreads = kWarps * 32;
// The reducers stream rows through shared memory: a chunk is kStagePieces 16-byte pieces (8 BF16
// values each) per lane, and each warp keeps kReduceStages chunks in flight (cp.async), far more
// bytes than loads into registers could hold (the reduction is bound by bytes in flight per SM).
constexpr int kStagePieces = 4;
constexpr int kChunkPieces = 32 * kStagePieces;  // 2 KiB per warp
constexpr int kReduceStages = 6;
constexpr std::size_t kStageBytes = sizeof(int4) * kWarps * kReduceStages * kChunkPieces;  // 192 KiB

// Rows staged before the kernel (stream order: the copies are complete): one share per source.
__device__ void publish_staged(const HtCombineArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank;
  const int s = static_cast<int>(threadIdx.x);
  if (blockIdx.x != 0 || s >= G || s == me) return;
  __threadfence_system();
  ptx::st_release_sys(RegionLayout::progress(v.peer_base[me], s, 0),
                      static_cast<std::uint64_t>(a.count_matrix[s * G + me]));
}

__device__ void run_sender(const HtCombineArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, S = a.num_shares;
  const int lane = threadIdx.x % 32;
  const int share = blockIdx.x * kWarps + threadIdx.x / 32;
  const HtCombineLayout& l = a.region;
  for (int i = 1; i < G; ++i) {
    const int s = (me + i) % G;  // start with the next rank, so senders spread over peers
    const std::int64_t recv_base = first_row_on(a.count_matrix, G, s, me);  // where s's rows sit in x
    // Push: into s's region after the rows s sent to ranks before me. Pull: my own region, as in x.
    const std::int64_t dst_base = a.pull ? recv_base : first_row_back(a.count_matrix, G, s, me);
    char* region = RegionLayout::data(v.peer_base[a.pull ? me : s]);
    std::uint64_t* progress = a.pull ? RegionLayout::progress(v.peer_base[me], s, share)
                                     : RegionLayout::progress(v.peer_base[s], me, share);
    const std::int64_t n = a.count_matrix[s * G + me];
    const std::int64_t j0 = share_begin(n, share, S), j1 = share_begin(n, share + 1, S);
    for (std::int64_t j = j0; j < j1; j += a.publish_rows) {
      const std::int64_t rows = min(static_cast<std::int64_t>(a.publish_rows), j1 - j);
      warp_copy_v4<CopySource::kReadOnly>(region + l.x_offset + (dst_base + j) * l.row_bytes,
                                          reinterpret_cast<const char*>(a.x) + (recv_base + j) * l.row_bytes,
                                          static_cast<std::size_t>(rows * l.row_bytes));
      if (l.num_topk > 0) {
        float* dst_w = reinterpret_cast<float*>(region + l.weights_offset) + (dst_base + j) * l.num_topk;
        const float* src_w = a.topk_weights + (recv_base + j) * l.num_topk;
        for (int k = lane; k < rows * l.num_topk; k += 32) dst_w[k] = src_w[k];
      }
      __syncwarp();
      // NOTE: after the warp barrier, so every lane's rows precede the release.
      if (lane == 0) ptx::st_release_sys(progress, static_cast<std::uint64_t>(j + rows - j0));
    }
  }
}

// Everything a reducer warp reads, fixed for the call. Per rank r (r == me: this rank's own rows,
// in x): where r's rows of my tokens start, their weight rows, and r's progress counters for me
// (push: in my region, written by r; pull: in r's region, written by r as it stages).
struct ReduceContext {
  const HtCombineArgs& a;
  const char* const* rows;             // [G]
  const float* const* weights;         // [G]
  const std::uint64_t* const* shares;  // [G]: share 0's counter; share b's is b further
  const std::int64_t* back_rows;       // [G]: rows rank r returns to me
  int pieces;                          // 16-byte pieces per row
  int chunks;                          // staged chunks per row
  int lane;
};

// What the last wait of this lane's rank (lanes < 32 only) acquired: a later row of the same share
// at or below it needs no wait (nor the acquire's L1 invalidation).
struct SeenProgress {
  int share = -1;
  std::uint64_t rows = 0;
};

// Fills srcs with token t's rows in summation order (biases, then ranks ascending) once every
// remote one has arrived. Returns how many, or -1 when a wait timed out (it is reported).
__device__ int gather_sources(const ReduceContext& c, std::int64_t t, const int4** srcs, SeenProgress& seen) {
  const HtCombineArgs& a = c.a;
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, S = a.num_shares;
  const HtCombineLayout& l = a.region;
  __syncwarp();  // every lane is done with the previous token's sources
  int num_src = 0;
  bool ok = true;
  if (a.bias0 != nullptr) srcs[num_src++] = reinterpret_cast<const int4*>(a.bias0 + t * a.hidden);
  if (a.bias1 != nullptr) srcs[num_src++] = reinterpret_cast<const int4*>(a.bias1 + t * a.hidden);
  for (int r0 = 0; r0 < G; r0 += 32) {
    const int r = r0 + c.lane;
    const std::int32_t slot = r < G ? a.send_slot[t * G + r] : -1;
    if (slot >= 0 && r != me) {
      const std::int64_t n = c.back_rows[r];
      const int share = share_of(n, slot, S);
      const std::uint64_t need = static_cast<std::uint64_t>(slot - share_begin(n, share, S) + 1);
      const bool cached = r0 == 0 && share == seen.share && need <= seen.rows;
      if (!cached) {
        std::uint64_t acquired = 0;
        ok = ok && wait_at_least(c.shares[r] + share, need, v, OpId::kCombine,
                                 a.pull ? CounterId::kRowsStaged : CounterId::kRowsArrived,
                                 v.domain_base_rank + r, &acquired);
        if (r0 == 0) seen = {share, acquired};
      }
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, slot >= 0);
    if (slot >= 0) {
      const char* row = c.rows[r] + static_cast<std::int64_t>(slot) * l.row_bytes;
      srcs[num_src + __popc(ballot & ((1u << c.lane) - 1u))] = reinterpret_cast<const int4*>(row);
    }
    num_src += __popc(ballot);
  }
  __syncwarp();
  return __all_sync(0xffffffffu, ok) ? num_src : -1;
}

// A staged chunk: its token (after the warp's first), its chunk of the row, and whether it is that
// chunk's last source (the sum is then stored). Chunks < 1024 (hidden < 2^20 BF16 values) and
// tokens < 2^21.
__device__ __forceinline__ std::uint32_t pack_item(std::int64_t token, int chunk, bool last) {
  return static_cast<std::uint32_t>(token) << 11 | static_cast<std::uint32_t>(chunk) << 1 | (last ? 1u : 0u);
}
__device__ __forceinline__ std::int64_t item_token(std::uint32_t item) {
  return item >> 11;
}
__device__ __forceinline__ int item_chunk(std::uint32_t item) {
  return static_cast<int>(item >> 1 & 1023u);
}
__device__ __forceinline__ bool item_last(std::uint32_t item) {
  return (item & 1u) != 0;
}

// The front of a reducer warp's pipeline: walks (token, chunk, source) in the order the sums
// consume them and copies each chunk into the next stage slot with cp.async (one commit group per
// call), noting in `items` (one copy per lane: no lane reads another's) which token and chunk the
// slot holds and whether it is the chunk's last source. kReduceStages chunks are on their way
// while the warp adds the oldest.
struct ReduceIssuer {
  WarpTokens range;
  std::int64_t t, t_begin, t_end;  // t_end: past the last slice's part (every token is below it)
  int seg = 0;
  std::int64_t seg_end;
  int chunk = 0, src = 0, num_src = 0;
  int issued = 0;  // commit groups so far (empty ones once every chunk is issued)
  int copied = 0;  // chunks among them
  SeenProgress seen;

  __device__ explicit ReduceIssuer(const WarpTokens& r)
      : range(r), t(r.begin(0) - 1), t_begin(r.begin(0)), t_end(r.end(r.segments - 1)), seg_end(r.end(0)) {}

  // Moves to the next token with rows to sum; a token with none gets a zero row here.
  __device__ void next_token(const ReduceContext& c, const int4** srcs) {
    while (true) {
      if (++t >= seg_end) {  // on to the next slice with tokens of this warp, if any
        do {
          if (++seg >= range.segments) {
            t = t_end;
            return;
          }
          t = range.begin(seg);
          seg_end = range.end(seg);
        } while (t >= seg_end);
      }
      num_src = gather_sources(c, t, srcs, seen);
      if (num_src < 0) {  // a remote row never came (reported): nothing more is issued
        t = t_end;
        return;
      }
      if (num_src > 0) return;
      auto* out = reinterpret_cast<int4*>(c.a.out + t * c.a.hidden);
      for (int i = c.lane; i < c.pieces; i += 32) ptx::st_na_v4(out + i, make_int4(0, 0, 0, 0));
    }
  }

  __device__ void issue(const ReduceContext& c, const int4** srcs, int4* stage, std::uint32_t* items) {
    if (t < t_end) {
      const int index = issued % kReduceStages;
      const int4* from = srcs[src];
      int4* slot = stage + index * kChunkPieces;
      const int base = chunk * kChunkPieces;
#pragma unroll
      for (int u = 0; u < kStagePieces; ++u) {
        const int i = base + u * 32 + c.lane;
        if (i < c.pieces) ptx::cp_async_16(slot + u * 32 + c.lane, from + i);
      }
      const bool last = src + 1 == num_src;
      items[index * 32 + c.lane] = pack_item(t - t_begin, chunk, last);
      ++copied;
      if (last) {
        src = 0;
        if (++chunk == c.chunks) {
          chunk = 0;
          next_token(c, srcs);
        }
      } else {
        ++src;
      }
    }
    ptx::cp_async_commit();
    ++issued;
  }
};

// Weight rows of tokens [t_begin, t_end): summed over the ranks that received each token, in rank
// order; a lane per (token, slot).
__device__ void reduce_weights(const ReduceContext& c, std::int64_t t_begin, std::int64_t t_end) {
  const HtCombineArgs& a = c.a;
  const int G = a.view.num_domain_ranks;
  const int K = a.region.num_topk;
  if (a.out_weights == nullptr || K == 0) return;
  for (std::int64_t e = t_begin * K + c.lane; e < t_end * K; e += 32) {
    const std::int64_t t = e / K;
    const int k = static_cast<int>(e % K);
    float w = 0.0f;
    for (int r = 0; r < G; ++r) {
      const std::int32_t slot = a.send_slot[t * G + r];
      if (slot < 0) continue;
      w += *reinterpret_cast<const volatile float*>(c.weights[r] + static_cast<std::int64_t>(slot) * K + k);
    }
    a.out_weights[e] = w;
  }
}

// Reducer block `reducer` of `num_reducers`; every thread of the block calls it.
__device__ void run_reducer(const HtCombineArgs& a, int reducer, int num_reducers) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __shared__ const char* rows[kMaxDomainRanks];
  __shared__ const float* weights[kMaxDomainRanks];
  __shared__ const std::uint64_t* shares[kMaxDomainRanks];
  __shared__ std::int64_t back_rows[kMaxDomainRanks];
  __shared__ const int4* srcs[kWarps][kMaxDomainRanks + 2];
  __shared__ std::uint32_t items[kWarps][kReduceStages * 32];
  extern __shared__ int4 stages[];  // [kWarps][kReduceStages][kChunkPieces]
  const HtCombineLayout& l = a.region;
  for (int r = threadIdx.x; r < G; r += blockDim.x) {
    // Rank r's rows of my tokens: in x after the rows of ranks before me (mine: x itself, pull:
    // r's region, staged as in r's x), or in my region after the rows I sent to ranks before r.
    const std::int64_t base =
        r == me || a.pull ? first_row_on(a.count_matrix, G, me, r) : first_row_back(a.count_matrix, G, me, r);
    if (r == me) {
      rows[r] = reinterpret_cast<const char*>(a.x) + base * l.row_bytes;
      weights[r] = a.topk_weights + base * l.num_topk;
      shares[r] = nullptr;
    } else {
      const char* region = RegionLayout::data(v.peer_base[a.pull ? r : me]);
      rows[r] = region + l.x_offset + base * l.row_bytes;
      weights[r] = reinterpret_cast<const float*>(region + l.weights_offset) + base * l.num_topk;
      shares[r] = a.pull ? RegionLayout::progress(v.peer_base[r], me, 0)
                         : RegionLayout::progress(v.peer_base[me], r, 0);
    }
    back_rows[r] = a.count_matrix[me * G + r];
  }
  __syncthreads();
  const int pieces = static_cast<int>(a.hidden / 8);
  const int chunks = (pieces + kChunkPieces - 1) / kChunkPieces;
  const ReduceContext c{a, rows, weights, shares, back_rows, pieces, chunks, lane};
  int4* stage = stages + static_cast<std::size_t>(warp) * kReduceStages * kChunkPieces;

  // NOTE: each reducer warp walks a contiguous token range (per slice). Rows of a source arrive in
  // token order within each share and all shares progress at once, so contiguous ranges let the
  // reducers follow every share in parallel (interleaved tokens would all wait on the same share).
  // When the shares land one after another (copy-engine push), every warp takes a part of each
  // slice in turn, so all of them work on the share that has landed.
  const WarpTokens range{a.num_tokens, static_cast<std::int64_t>(reducer) * kWarps + warp,
                         static_cast<std::int64_t>(num_reducers) * kWarps, a.reduce_segments};
  ReduceIssuer issuer(range);
  const std::int64_t t_begin = issuer.t_begin;
  issuer.next_token(c, srcs[warp]);
  for (int s = 0; s < kReduceStages; ++s) issuer.issue(c, srcs[warp], stage, items[warp]);

  // Payload: float32 sums in source order, one BF16 rounding per value.
  float acc[kStagePieces][8] = {};
  for (int consumed = 0; consumed < issuer.copied; ++consumed) {
    ptx::cp_async_wait_pending<kReduceStages - 1>();  // the oldest chunk has landed
    const int index = consumed % kReduceStages;
    const std::uint32_t item = items[warp][index * 32 + lane];
    const int base = item_chunk(item) * kChunkPieces;
    const int4* slot = stage + index * kChunkPieces;
#pragma unroll
    for (int u = 0; u < kStagePieces; ++u)
      if (base + u * 32 + lane < pieces) add_bf16x8(acc[u], slot[u * 32 + lane]);
    issuer.issue(c, srcs[warp], stage, items[warp]);  // refills the slot just read
    if (!item_last(item)) continue;
    auto* out = reinterpret_cast<int4*>(a.out + (t_begin + item_token(item)) * a.hidden) + base;
#pragma unroll
    for (int u = 0; u < kStagePieces; ++u) {
      if (base + u * 32 + lane < pieces) {
        int4 packed;
        auto* h = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
        for (int q = 0; q < 4; ++q) h[q] = __floats2bfloat162_rn(acc[u][2 * q], acc[u][2 * q + 1]);
        ptx::st_na_v4(out + u * 32 + lane, packed);
      }
#pragma unroll
      for (int q = 0; q < 8; ++q) acc[u][q] = 0.0f;
    }
  }
  ptx::cp_async_wait_pending<0>();
  for (int q = 0; q < range.segments; ++q) reduce_weights(c, range.begin(q), range.end(q));
}

// Per-peer telemetry, once per combine (block 0): each peer's rows (and weight rows) go back to
// it, and this rank's come back from the peers that received them.
__device__ void count_combine_traffic(const HtCombineArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank;
  const auto row = static_cast<std::uint64_t>(a.region.row_bytes) +
                   (a.topk_weights != nullptr ? 4u * static_cast<std::uint64_t>(a.region.num_topk) : 0u);
  for (int p = threadIdx.x; p < G; p += blockDim.x)
    if (p != me)
      count_traffic(v, OpId::kCombine, p, row * static_cast<std::uint64_t>(a.count_matrix[p * G + me]),
                    row * static_cast<std::uint64_t>(a.count_matrix[me * G + p]));
}

__global__ void __launch_bounds__(kThreads, 1) ht_combine_kernel(HtCombineArgs a) {
  pdl_entry();
  // Rows coming back to any rank (pull: staged by any rank) must fit its region.
  if (!rows_fit(a.count_matrix, a.view.num_domain_ranks, a.region.cap_rows, a.pull, a.view, OpId::kCombine))
    return;
  if (blockIdx.x == 0) count_combine_traffic(a);
  if (a.staged || a.copy_pushed) {
    if (a.staged) publish_staged(a);
    run_reducer(a, blockIdx.x, gridDim.x);
    return;
  }
  const bool sender = static_cast<int>(blockIdx.x) < a.num_senders;
  if (sender) run_sender(a);
  // Every block reduces once its sends are done (senders never wait, so no deadlock).
  run_reducer(a, blockIdx.x, gridDim.x);
}

}  // namespace

void launch_ht_combine(const HtCombineArgs& args, int num_blocks, void* stream) {
  raise_func_attribute(reinterpret_cast<const void*>(ht_combine_kernel),
                       cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kStageBytes));
  launch_kernel(Launch::kPdl, ht_combine_kernel, num_blocks, kThreads, kStageBytes,
                static_cast<cudaStream_t>(stream), args);
}

}  // namespace epcomm
