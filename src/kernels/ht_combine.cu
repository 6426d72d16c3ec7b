// High-throughput combine within one NVLink domain (see ht_args.hpp for the protocol).
//
// Blocks [0, S) send: for every source rank s, warp w (of S * kWarps shares) copies its share of
// the rows this rank received from s (a contiguous block of x) back into s's region, where they
// land at [rows s sent to ranks before me] + j, and releases how many rows of its share are done.
// Reducers: one warp per token of this rank sums, in float32 and in a fixed order (bias0, bias1,
// then ranks ascending), the rows of every rank that received the token, waiting for each row's
// share to arrive; local rows are read from x directly. Phased schedule (the default): every block
// sends, then reduces. Overlapped schedule: blocks [S, grid) reduce from the start.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/copy.cuh"
#include "kernels/ht_args.hpp"
#include "kernels/ht_guard.cuh"
#include "kernels/wait.cuh"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kWarps = kHtWarpsPerBlock;
constexpr int kThreads = kWarps * 32;
constexpr int kPiecesPerLane = 6;  // 16-byte pieces (8 BF16 values each) a lane accumulates at once

// Share b of n rows among S senders: [n*b/S, n*(b+1)/S).
__device__ __forceinline__ std::int64_t share_begin(std::int64_t n, int b, int S) {
  return n * b / S;
}
// The share holding row j (0 <= j < n): the largest b with share_begin(b) <= j.
__device__ __forceinline__ int share_of(std::int64_t n, std::int64_t j, int S) {
  return static_cast<int>(((j + 1) * S + n - 1) / n - 1);
}

__device__ void run_sender(const HtCombineArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, S = a.num_shares;
  const int lane = threadIdx.x % 32;
  const int share = blockIdx.x * kWarps + threadIdx.x / 32;
  const HtCombineLayout& l = a.region;
  for (int i = 1; i < G; ++i) {
    const int s = (me + i) % G;  // start with the next rank, so senders spread over peers
    std::int64_t recv_base = 0, dst_base = 0;
    for (int r = 0; r < s; ++r) recv_base += a.count_matrix[r * G + me];
    for (int r = 0; r < me; ++r) dst_base += a.count_matrix[s * G + r];
    const std::int64_t n = a.count_matrix[s * G + me];
    const std::int64_t j0 = share_begin(n, share, S), j1 = share_begin(n, share + 1, S);
    char* region = RegionLayout::data(v.peer_base[s]);
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
      if (lane == 0)
        ptx::st_release_sys(RegionLayout::progress(v.peer_base[s], me, share),
                            static_cast<std::uint64_t>(j + rows - j0));
    }
  }
}

__device__ __forceinline__ void add_bf16x8(float* acc, const int4& piece) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&piece);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    acc[2 * i] += f.x;
    acc[2 * i + 1] += f.y;
  }
}

// Reducer block `reducer` of `num_reducers`; every thread of the block calls it.
__device__ void run_reducer(const HtCombineArgs& a, int reducer, int num_reducers) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, S = a.num_shares;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const HtCombineLayout& l = a.region;
  __shared__ std::int64_t row_base[kMaxDomainRanks];  // where rank r's rows of mine start here
  __shared__ const int4* srcs[kWarps][kMaxDomainRanks + 2];
  for (int r = threadIdx.x; r < G; r += blockDim.x) {
    std::int64_t base = 0;
    if (r == me) {
      for (int s = 0; s < me; ++s) base += a.count_matrix[s * G + me];  // my own rows sit in x
    } else {
      for (int q = 0; q < r; ++q) base += a.count_matrix[me * G + q];
    }
    row_base[r] = base;
  }
  __syncthreads();
  const char* my_region = RegionLayout::data(v.peer_base[me]);
  const int pieces = static_cast<int>(a.hidden / 8);

  // NOTE: each reducer warp walks a contiguous token range. Rows of a source arrive in token order
  // within each share and all shares progress at once, so contiguous ranges let the reducers
  // follow every share in parallel (interleaved tokens would all wait on the same share).
  const std::int64_t num_warps = static_cast<std::int64_t>(num_reducers) * kWarps;
  const std::int64_t my_warp = static_cast<std::int64_t>(reducer) * kWarps + warp;
  const std::int64_t t_begin = a.num_tokens * my_warp / num_warps;
  const std::int64_t t_end = a.num_tokens * (my_warp + 1) / num_warps;
  for (std::int64_t t = t_begin; t < t_end; ++t) {
    // Gather the sources of t (biases first, then ranks in order) and wait for remote rows.
    int num_src = 0;
    bool ok = true;
    if (a.bias0 != nullptr) srcs[warp][num_src++] = reinterpret_cast<const int4*>(a.bias0 + t * a.hidden);
    if (a.bias1 != nullptr) srcs[warp][num_src++] = reinterpret_cast<const int4*>(a.bias1 + t * a.hidden);
    for (int r0 = 0; r0 < G; r0 += 32) {
      const int r = r0 + lane;
      const std::int32_t slot = r < G ? a.send_slot[t * G + r] : -1;
      if (slot >= 0 && r != me) {
        const std::int64_t n = a.count_matrix[me * G + r];
        const int share = share_of(n, slot, S);
        const std::int64_t need = slot - share_begin(n, share, S) + 1;
        ok = ok && wait_at_least(RegionLayout::progress(v.peer_base[me], r, share),
                                 static_cast<std::uint64_t>(need), v, OpId::kCombine, CounterId::kRowsArrived,
                                 v.domain_base_rank + r);
      }
      const unsigned ballot = __ballot_sync(0xffffffffu, slot >= 0);
      if (slot >= 0) {
        const char* row = r == me ? reinterpret_cast<const char*>(a.x) + (row_base[r] + slot) * l.row_bytes
                                  : my_region + l.x_offset + (row_base[r] + slot) * l.row_bytes;
        srcs[warp][num_src + __popc(ballot & ((1u << lane) - 1u))] = reinterpret_cast<const int4*>(row);
      }
      num_src += __popc(ballot);
    }
    if (!__all_sync(0xffffffffu, ok)) return;
    __syncwarp();

    // Payload: float32 sums in source order, one BF16 rounding. Two sources' pieces are loaded
    // before either is added, so a lane keeps 2 * kPiecesPerLane loads in flight.
    auto* out = reinterpret_cast<int4*>(a.out + t * a.hidden);
    for (int base = 0; base < pieces; base += 32 * kPiecesPerLane) {
      float acc[kPiecesPerLane][8] = {};
      int k = 0;
      for (; k + 1 < num_src; k += 2) {
        const int4* src0 = srcs[warp][k];
        const int4* src1 = srcs[warp][k + 1];
        int4 p0[kPiecesPerLane], p1[kPiecesPerLane];
#pragma unroll
        for (int u = 0; u < kPiecesPerLane; ++u) {
          const int i = base + u * 32 + lane;
          if (i < pieces) {
            p0[u] = ptx::ld_v4(src0 + i);
            p1[u] = ptx::ld_v4(src1 + i);
          }
        }
#pragma unroll
        for (int u = 0; u < kPiecesPerLane; ++u) {
          if (base + u * 32 + lane < pieces) {
            add_bf16x8(acc[u], p0[u]);
            add_bf16x8(acc[u], p1[u]);
          }
        }
      }
      if (k < num_src) {
        const int4* src0 = srcs[warp][k];
#pragma unroll
        for (int u = 0; u < kPiecesPerLane; ++u) {
          const int i = base + u * 32 + lane;
          if (i < pieces) add_bf16x8(acc[u], ptx::ld_v4(src0 + i));
        }
      }
#pragma unroll
      for (int u = 0; u < kPiecesPerLane; ++u) {
        const int i = base + u * 32 + lane;
        if (i >= pieces) continue;
        int4 packed;
        auto* h = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
        for (int q = 0; q < 4; ++q) h[q] = __floats2bfloat162_rn(acc[u][2 * q], acc[u][2 * q + 1]);
        ptx::st_na_v4(out + i, packed);
      }
    }

    // Weight rows: summed over the same ranks, in rank order.
    if (a.out_weights != nullptr && lane < l.num_topk) {
      float w = 0.0f;
      for (int r = 0; r < G; ++r) {
        const std::int32_t slot = a.send_slot[t * G + r];
        if (slot < 0) continue;
        const float* row = r == me ? a.topk_weights + (row_base[r] + slot) * l.num_topk
                                   : reinterpret_cast<const float*>(my_region + l.weights_offset) +
                                         (row_base[r] + slot) * l.num_topk;
        w += *reinterpret_cast<const volatile float*>(row + lane);
      }
      a.out_weights[t * l.num_topk + lane] = w;
    }
    __syncwarp();
  }
}

__global__ void __launch_bounds__(kThreads, 1) ht_combine_kernel(HtCombineArgs a) {
  // Rows coming back to any rank must fit its region.
  if (!rows_fit(a.count_matrix, a.view.num_domain_ranks, a.region.cap_rows, false, a.view, OpId::kCombine))
    return;
  const bool sender = static_cast<int>(blockIdx.x) < a.num_senders;
  if (sender) run_sender(a);
  // Phased: every block reduces once its sends are done (senders never wait, so no deadlock).
  if (a.phased)
    run_reducer(a, blockIdx.x, gridDim.x);
  else if (!sender)
    run_reducer(a, blockIdx.x - a.num_senders, gridDim.x - a.num_senders);
}

}  // namespace

void launch_ht_combine(const HtCombineArgs& args, int num_blocks, void* stream) {
  ht_combine_kernel<<<num_blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
