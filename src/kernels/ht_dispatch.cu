// High-throughput dispatch within one NVLink domain (see ht_args.hpp for the protocol).
//
// Blocks [0, C) are senders: block c owns channel c (a contiguous token range); warp w of a round
// forwards one token to every rank that needs it, loading each 16-byte piece of the row once and
// storing it to every destination. Rows land at their final index (source-major, token order),
// so no per-chunk handshake is needed; after each round the block publishes, per destination,
// how many of its rows are complete. Blocks [C, grid) are receivers: they copy rows that peers
// completed from this rank's region into the outputs, whichever chunk has progress first.
#include <cstdint>

#include "kernels/copy.cuh"
#include "kernels/ht_args.hpp"
#include "kernels/ht_guard.cuh"
#include "kernels/wait.cuh"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kRowUnroll = 4;  // 16-byte pieces per lane loaded before they are stored

struct DispatchRowDst {
  std::uint8_t* x;
  float* scales;
  char* topk;
  float* weights;
  std::int32_t* src_idx;
};

// Row `row` of either this rank's outputs or a region laid out by HtDispatchLayout.
__device__ __forceinline__ DispatchRowDst region_row(const HtDispatchLayout& l, void* region, std::int64_t row) {
  char* base = RegionLayout::data(region);
  return {reinterpret_cast<std::uint8_t*>(base + l.x_offset) + row * l.row_bytes,
          reinterpret_cast<float*>(base + l.scales_offset) + row * l.num_scales,
          base + l.topk_offset + row * l.num_topk * l.idx_bytes,
          reinterpret_cast<float*>(base + l.weights_offset) + row * l.num_topk,
          reinterpret_cast<std::int32_t*>(base + l.src_idx_offset) + row};
}
__device__ __forceinline__ DispatchRowDst output_row(const HtDispatchArgs& a, std::int64_t row) {
  const HtDispatchLayout& l = a.region;
  return {a.recv_x + row * l.row_bytes, a.recv_scales + row * l.num_scales,
          static_cast<char*>(a.recv_topk_idx) + row * l.num_topk * l.idx_bytes, a.recv_topk_weights + row * l.num_topk,
          a.recv_src_idx + row};
}

__device__ __forceinline__ void store_index(char* row, int j, int idx_bytes, std::int64_t value) {
  if (idx_bytes == 8) reinterpret_cast<std::int64_t*>(row)[j] = value;
  else reinterpret_cast<std::int32_t*>(row)[j] = static_cast<std::int32_t>(value);
}

// The destinations of one token: domain ranks and the row each receives it at.
struct TokenRoute {
  int num_dsts;
  int dst[kMaxDomainRanks];
  std::int64_t row[kMaxDomainRanks];
};

// One warp forwards token t to every destination of `route`.
__device__ void forward_token(const HtDispatchArgs& a, std::int64_t t, const TokenRoute& route) {
  const HtDispatchLayout& l = a.region;
  const DomainView& v = a.view;
  const int lane = threadIdx.x % 32;
  auto dst_of = [&](int i) {
    const int d = route.dst[i];
    return d == v.domain_rank ? output_row(a, route.row[i]) : region_row(l, v.peer_base[d], route.row[i]);
  };

  // Payload: each lane loads kRowUnroll pieces, then stores them to every destination.
  const auto* src = reinterpret_cast<const int4*>(a.x + t * l.row_bytes);
  const int pieces = static_cast<int>(l.row_bytes / 16);
  for (int base = 0; base < pieces; base += 32 * kRowUnroll) {
    int4 v4[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      const int i = base + u * 32 + lane;
      if (i < pieces) v4[u] = ptx::ld_nc_na_v4(src + i);
    }
    for (int k = 0; k < route.num_dsts; ++k) {
      auto* dst = reinterpret_cast<int4*>(dst_of(k).x);
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) {
        const int i = base + u * 32 + lane;
        if (i < pieces) ptx::st_na_v4(dst + i, v4[u]);
      }
    }
  }

  // Metadata: scales gathered from their strided layout; top-k turned into local ids.
  for (int k = 0; k < route.num_dsts; ++k) {
    const int d = route.dst[k];
    const DispatchRowDst dst = dst_of(k);
    for (int j = lane; j < l.num_scales; j += 32)
      dst.scales[j] = a.x_scales[t * a.scale_stride_token + j * a.scale_stride_block];
    if (l.num_topk > 0 && lane < l.num_topk) {
      const std::int64_t e = l.idx_bytes == 8 ? static_cast<const std::int64_t*>(a.topk_idx)[t * l.num_topk + lane]
                                              : static_cast<const std::int32_t*>(a.topk_idx)[t * l.num_topk + lane];
      const std::int64_t first = static_cast<std::int64_t>(v.domain_base_rank + d) * a.num_local_experts;
      const bool local = e >= first && e < first + a.num_local_experts;
      store_index(dst.topk, lane, l.idx_bytes, local ? e - first : -1);
      dst.weights[lane] = local ? a.topk_weights[t * l.num_topk + lane] : 0.0f;
    }
    if (lane == 0) *dst.src_idx = static_cast<std::int32_t>(t);
  }
}

__device__ void run_sender(const HtDispatchArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, channel = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __shared__ std::int64_t dst_row_base[kMaxDomainRanks];  // my first row on each destination
  __shared__ std::int32_t sent[kMaxDomainRanks];          // rows of this channel complete per dest
  __shared__ std::int32_t published[kMaxDomainRanks];     // last count released to each dest
  __shared__ TokenRoute routes[kWarps];
  for (int d = threadIdx.x; d < G; d += blockDim.x) {
    std::int64_t base = 0;
    for (int s = 0; s < me; ++s) base += a.count_matrix[s * G + d];
    dst_row_base[d] = base;
    sent[d] = 0;
    published[d] = 0;
  }
  __syncthreads();
  const std::int64_t t_begin = static_cast<std::int64_t>(channel) * a.tokens_per_channel;
  const std::int64_t t_end = min(a.num_tokens, t_begin + a.tokens_per_channel);
  for (std::int64_t round = t_begin; round < t_end; round += kWarps) {
    const std::int64_t t = round + warp;
    if (t < t_end) {
      TokenRoute& route = routes[warp];
      // Compact the destinations of t (in rank order) with a warp ballot.
      int n = 0;
      for (int d0 = 0; d0 < G; d0 += 32) {
        const int d = d0 + lane;
        const std::int32_t slot = d < G ? a.send_slot[t * G + d] : -1;
        const unsigned ballot = __ballot_sync(0xffffffffu, slot >= 0);
        if (slot >= 0) {
          const int k = n + __popc(ballot & ((1u << lane) - 1u));
          route.dst[k] = d;
          route.row[k] = dst_row_base[d] + slot;
        }
        n += __popc(ballot);
      }
      if (lane == 0) route.num_dsts = n;
      __syncwarp();
      forward_token(a, t, route);
      if (lane < n && route.dst[lane] != me) atomicAdd_block(&sent[route.dst[lane]], 1);
      for (int k = 32 + lane; k < n; k += 32)
        if (route.dst[k] != me) atomicAdd_block(&sent[route.dst[k]], 1);
    }
    __syncthreads();
    // NOTE: publish only after the block barrier, so every warp's rows of this round precede the
    // release; and only when the count moved, so no late write lands after the peer moved on.
    for (int d = threadIdx.x; d < G; d += blockDim.x) {
      const std::int32_t n = sent[d];
      if (d == me || n == published[d]) continue;
      ptx::fence_acq_rel_sys();
      ptx::st_release_sys(RegionLayout::progress(v.peer_base[d], me, channel), static_cast<std::uint64_t>(n));
      published[d] = n;
    }
    __syncthreads();
  }
}

// Copies rows [from, to) of one (source, chunk) from this rank's region into the outputs.
__device__ void copy_out(const HtDispatchArgs& a, std::int64_t from, std::int64_t to) {
  const HtDispatchLayout& l = a.region;
  const DispatchRowDst src = region_row(l, a.view.peer_base[a.view.domain_rank], from);
  const DispatchRowDst dst = output_row(a, from);
  const auto rows = static_cast<std::size_t>(to - from);
  block_copy_acquired_v4(dst.x, src.x, rows * static_cast<std::size_t>(l.row_bytes));
  if (l.num_scales > 0) block_copy_acquired_b32(dst.scales, src.scales, rows * 4u * l.num_scales);
  if (l.num_topk > 0) {
    block_copy_acquired_b32(dst.topk, src.topk, rows * static_cast<std::size_t>(l.num_topk * l.idx_bytes));
    block_copy_acquired_b32(dst.weights, src.weights, rows * 4u * l.num_topk);
  }
  block_copy_acquired_b32(dst.src_idx, src.src_idx, rows * 4u);
}

__device__ void run_receiver(const HtDispatchArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, C = a.num_channels;
  const int receiver = blockIdx.x - C, num_receivers = gridDim.x - C;
  __shared__ std::uint64_t seen;
  __shared__ int status;  // 0 running, 1 all done, 2 failed

  // Worst-case mode: rows past the real count carry no expert.
  const std::int64_t num_recv = *a.num_recv;
  for (std::int64_t row = num_recv + receiver; row < a.num_rows; row += num_receivers) {
    const DispatchRowDst dst = output_row(a, row);
    for (int j = threadIdx.x; j < a.region.num_topk; j += blockDim.x) {
      store_index(dst.topk, j, a.region.idx_bytes, -1);
      dst.weights[j] = 0.0f;
    }
    if (threadIdx.x == 0) *dst.src_idx = -1;
  }

  // Pairs (source s != me, channel c) owned by this receiver: p = receiver + i * num_receivers.
  const int num_pairs = G * C;
  std::int64_t copied_local = 0;  // rows copied by this block (for progress detection)
  std::uint64_t last_progress = ptx::globaltimer();
  std::int64_t last_copied = -1;
  extern __shared__ std::int32_t copied[];  // [pairs owned]
  int owned = 0;
  for (int p = receiver; p < num_pairs; p += num_receivers) copied[owned++] = 0;
  __syncthreads();
  while (true) {
    bool all_done = true;
    int k = 0;
    for (int p = receiver; p < num_pairs; p += num_receivers, ++k) {
      const int s = p / C, c = p % C;
      const std::int32_t total = a.recv_chunk_count[s * C + c];
      if (s == me || copied[k] >= total) continue;
      all_done = false;
      if (threadIdx.x == 0) seen = ptx::ld_acquire_sys(RegionLayout::progress(v.peer_base[me], s, c));
      __syncthreads();
      const auto ready = static_cast<std::int32_t>(seen);
      if (ready > copied[k]) {
        const std::int64_t start = a.recv_chunk_start[s * C + c];
        copy_out(a, start + copied[k], start + ready);
        copied_local += ready - copied[k];
      }
      __syncthreads();
      if (threadIdx.x == 0 && ready > copied[k]) copied[k] = ready;
      __syncthreads();
    }
    if (all_done) break;
    if (threadIdx.x == 0) {
      status = 0;
      const std::uint64_t now = ptx::globaltimer();
      if (copied_local != last_copied) {
        last_copied = copied_local;
        last_progress = now;
      } else if (failure_reported(v.status)) {
        status = 2;
      } else if (now - last_progress > v.timeout_ns) {
        // Name the first chunk still short.
        int k2 = 0;
        for (int p = receiver; p < num_pairs; p += num_receivers, ++k2) {
          const int s = p / C, c = p % C;
          if (s != me && copied[k2] < a.recv_chunk_count[s * C + c]) {
            report_failure(v.status, StatusCode::kTimeout, OpId::kDispatch, CounterId::kRowsArrived, v.rank,
                           v.domain_base_rank + s, a.recv_chunk_count[s * C + c], copied[k2]);
            break;
          }
        }
        status = 2;
      }
    }
    __syncthreads();
    if (status == 2) return;
  }
}

__global__ void __launch_bounds__(kThreads, 1) ht_dispatch_kernel(HtDispatchArgs a) {
  // Rows received by any rank must fit its region and (worst-case mode) its outputs.
  const std::int64_t limit = a.num_worst ? min(a.region.cap_rows, a.num_rows) : a.region.cap_rows;
  if (!rows_fit(a.count_matrix, a.view.num_domain_ranks, limit, true, a.view, OpId::kDispatch)) return;
  if (static_cast<int>(blockIdx.x) < a.num_channels) run_sender(a);
  else run_receiver(a);
}

}  // namespace

void launch_ht_dispatch(const HtDispatchArgs& args, int num_blocks, void* stream) {
  const int num_receivers = num_blocks - args.num_channels;
  const int pairs = args.view.num_domain_ranks * args.num_channels;
  const std::size_t smem = sizeof(std::int32_t) * static_cast<std::size_t>((pairs + num_receivers - 1) / num_receivers);
  if (smem > 32 * 1024)
    EPCOMM_CUDA_CHECK(cudaFuncSetAttribute(ht_dispatch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  ht_dispatch_kernel<<<num_blocks, kThreads, smem, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
