// Low-latency combine, the kernel family's body (see ll_args.hpp for the protocol, steps 7 and 8),
// templated on how peers are reached (ll_peers.cuh). Included by exactly the translation units
// that instantiate it: ll_combine.cu (CUDA IPC) and transport/nvshmem_ll_kernels.cu (NVSHMEM); its
// definitions sit in an unnamed namespace, one private copy per such unit.
//
// Send phase: warps take (received row, 4 KiB part) items over all local experts' valid rows and
// copy each part of y straight into the combine staging slot (token, top-k slot) of the row's owner.
// Receive phase: warps take (token, 256-channel part) items; each lane loads the 8 channels of
// every valid slot of its token first, then sums weight * value in slot order in float32 and
// rounds once to BF16.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/ll_args.hpp"
#include "kernels/ll_sync.cuh"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kSendPieces = 8;                           // 16-byte pieces per lane per send item
constexpr int kSendPartChannels = 32 * kSendPieces * 8;  // 2048 BF16 channels = 4 KiB
constexpr int kReduceChannels = 32 * 8;                  // one 16-byte piece (8 channels) per lane

// ---- send phase -----------------------------------------------------------------------------

// first[e] = rows of local experts before e (first[nle] = all rows): the dispatch's recv_count,
// each clamped to the capacity. One warp scans; every thread of the block calls it.
__device__ void expert_prefix(const LlCombineArgs& a, std::int32_t* first) {
  const LlLayout& l = a.layout;
  const std::int32_t* counts = l.recv_count(a.workspace, a.dispatch_half);
  const int nle = l.num_local_experts, lane = threadIdx.x % 32;
  if (threadIdx.x < 32) {
    std::int32_t carry = 0;
    for (int e0 = 0; e0 < nle; e0 += 32) {
      const int e = e0 + lane;
      const std::int32_t n =
          e < nle ? static_cast<std::int32_t>(
                        min(max(static_cast<std::int64_t>(counts[e]), std::int64_t{0}), l.capacity))
                  : 0;
      std::int32_t incl = n;
      for (int off = 1; off < 32; off <<= 1) {
        const std::int32_t y = __shfl_up_sync(kLlFullMask, incl, off);
        if (lane >= off) incl += y;
      }
      if (e < nle) first[e] = carry + incl - n;
      carry += __shfl_sync(kLlFullMask, incl, 31);
    }
    if (lane == 0) first[nle] = carry;
  }
  __syncthreads();
}

// The local expert holding global row g: the largest e with first[e] <= g.
__device__ __forceinline__ int expert_of_row(const std::int32_t* first, int nle, std::int32_t g) {
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

// The warp copies part `part` (kSendPartChannels channels) of a row from `src` to `dst` (both
// [hidden] bf16 rows).
__device__ __forceinline__ void copy_part(const int4* src, int4* dst, int part, int pieces_per_row) {
  const int lane = threadIdx.x % 32;
  int4 piece[kSendPieces];
#pragma unroll
  for (int u = 0; u < kSendPieces; ++u) {
    const int i = part * (kSendPartChannels / 8) + u * 32 + lane;
    if (i < pieces_per_row) piece[u] = ptx::ld_nc_na_v4(src + i);
  }
#pragma unroll
  for (int u = 0; u < kSendPieces; ++u) {
    const int i = part * (kSendPartChannels / 8) + u * 32 + lane;
    if (i < pieces_per_row) ptx::st_na_v4(dst + i, piece[u]);
  }
}

// Staging policies only, the whole warp: puts part `part` of received row `row` into the combine
// staging slot (t, slot) of its owner. NOTE: a put beyond NVLink may read only symmetric memory:
// y is read in place when it lies in the workspace (the zero-copy buffer, or dispatch outputs);
// otherwise the part is first copied into the zero-copy buffer of this combine's half, at the
// row's own position (this combine does not use that buffer; the next combine uses the other).
template <typename Peers>
__device__ __forceinline__ void put_part_back(const LlCombineArgs& a, int parity, std::int64_t row, int part,
                                              int owner, std::int32_t t, int slot) {
  const LlLayout& l = a.layout;
  const std::int64_t first = static_cast<std::int64_t>(part) * kSendPartChannels;
  const std::int64_t channels = min(static_cast<std::int64_t>(kSendPartChannels), l.hidden - first);
  const std::uint16_t* src = a.y + row * l.hidden;
  if (!a.y_in_workspace) {
    std::uint16_t* stage = l.zero_copy_y(a.workspace, a.half) + row * l.hidden;
    copy_part(reinterpret_cast<const int4*>(src), reinterpret_cast<int4*>(stage), part,
              static_cast<int>(l.hidden / 8));
    __syncwarp();
    src = stage;
  }
  Peers::put_warp(a.view, l.combine_row(a.workspace, parity, t, slot) + first, src + first,
                  static_cast<std::size_t>(channels) * sizeof(std::uint16_t), owner);
}

template <typename Peers>
__device__ void send_rows_back(const LlCombineArgs& a, int parity, const std::int32_t* first) {
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  void* ws = a.workspace;
  const std::int32_t* route = l.route(ws, a.dispatch_half);
  const std::int32_t* src_info = l.src_info(ws, a.dispatch_half);
  const int nle = l.num_local_experts;
  const int parts = static_cast<int>((l.hidden + kSendPartChannels - 1) / kSendPartChannels);
  const std::int64_t items = static_cast<std::int64_t>(first[nle]) * parts;
  const int pieces_per_row = static_cast<int>(l.hidden / 8);
  const std::int64_t num_warps = static_cast<std::int64_t>(gridDim.x) * kLlWarps;
  for (std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32; item < items;
       item += num_warps) {
    const auto g = static_cast<std::int32_t>(item / parts);
    const int part = static_cast<int>(item % parts);
    const int e = expert_of_row(first, nle, g);
    const std::int64_t row = static_cast<std::int64_t>(e) * l.capacity + (g - first[e]);
    const std::int32_t r = route[row];
    const int owner = ll_route_rank(r), slot = ll_route_slot(r);
    const std::int32_t t = src_info[row];
    // A corrupted handle must not write outside the staging.
    if (owner < 0 || owner >= v.num_domain_ranks || slot >= l.max_topk || t < 0 || t >= l.max_tokens)
      continue;
    if constexpr (Peers::kStagesLocally) {
      if (owner != v.domain_rank) {
        put_part_back<Peers>(a, parity, row, part, owner, t, slot);
        continue;
      }
    }
    const auto* src = reinterpret_cast<const int4*>(a.y + row * l.hidden);
    auto* dst = reinterpret_cast<int4*>(l.combine_row(Peers::target(v, a.workspace, owner), parity, t, slot));
    copy_part(src, dst, part, pieces_per_row);
  }
}

// ---- receive phase --------------------------------------------------------------------------

__device__ void reduce_tokens(const LlCombineArgs& a, int parity) {
  const LlLayout& l = a.layout;
  void* ws = a.workspace;
  const int lane = threadIdx.x % 32;
  const int parts = static_cast<int>((l.hidden + kReduceChannels - 1) / kReduceChannels);
  const std::int64_t items = a.num_tokens * parts;
  const std::int64_t num_warps = static_cast<std::int64_t>(gridDim.x) * kLlWarps;
  std::uint16_t* out = l.combine_out(ws, a.half);
  for (std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * kLlWarps + threadIdx.x / 32; item < items;
       item += num_warps) {
    const std::int64_t t = item / parts;
    const int part = static_cast<int>(item % parts);
    float weight = 0.0f;
    bool selected = false;
    if (lane < a.num_topk) {
      const std::int64_t e = ll_load_expert(a.topk_idx, a.idx_bytes, t * a.num_topk + lane);
      selected = e >= 0 && e < a.num_experts;
      weight = a.topk_weights[t * a.num_topk + lane];
    }
    const unsigned slots = __ballot_sync(kLlFullMask, selected);
    const std::int64_t c0 = static_cast<std::int64_t>(part) * kReduceChannels + lane * 8;
    const bool valid = c0 < l.hidden;
    // Loads of every slot first (they overlap), then the sums in slot order.
    int4 rows[kLlMaxTopk] = {};
#pragma unroll
    for (int j = 0; j < kLlMaxTopk; ++j)
      if (valid && ((slots >> j) & 1u) != 0)
        rows[j] = ptx::ld_v4(reinterpret_cast<const int4*>(l.combine_row(ws, parity, t, j) + c0));
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kLlMaxTopk; ++j) {
      const float w = __shfl_sync(kLlFullMask, weight, j);
      if (((slots >> j) & 1u) == 0) continue;
      const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&rows[j]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        // NOTE: explicit roundings (no FMA contraction), as the reference: acc += (w * y).
        acc[2 * i] = __fadd_rn(acc[2 * i], __fmul_rn(w, f.x));
        acc[2 * i + 1] = __fadd_rn(acc[2 * i + 1], __fmul_rn(w, f.y));
      }
    }
    if (!valid) continue;
    std::uint32_t words[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const std::uint16_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(acc[2 * i]));
      const std::uint16_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(acc[2 * i + 1]));
      words[i] = static_cast<std::uint32_t>(lo) | (static_cast<std::uint32_t>(hi) << 16);
    }
    ptx::st_na_v4(reinterpret_cast<int4*>(out + t * l.hidden + c0),
                  make_int4(static_cast<int>(words[0]), static_cast<int>(words[1]),
                            static_cast<int>(words[2]), static_cast<int>(words[3])));
  }
}

template <typename Peers>
__global__ void __launch_bounds__(kLlThreads, 1) ll_combine_kernel(LlCombineArgs a) {
  extern __shared__ std::int32_t first[];  // [nle + 1]
  ll_run_phases<Peers>(
      a.view, a.layout, a.workspace, kLlKindCombine, OpId::kLlCombine, a.phases, a.half, a.trace,
      [&](int parity) {
        expert_prefix(a, first);
        send_rows_back<Peers>(a, parity, first);
      },
      [&](int) {},  // every row was put by its warp
      [&](int parity) { reduce_tokens(a, parity); });
}

// The launcher of the instantiation for `Peers`.
template <typename Peers>
void launch_ll_combine_with(const LlCombineArgs& args, int num_blocks, void* stream) {
  const std::size_t smem = sizeof(std::int32_t) * static_cast<std::size_t>(args.layout.num_local_experts + 1);
  if (smem > 48 * 1024)
    EPCOMM_CUDA_CHECK(cudaFuncSetAttribute(
        ll_combine_kernel<Peers>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  ll_combine_kernel<Peers><<<num_blocks, kLlThreads, smem, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace

}  // namespace epcomm
