#include <cuda_bf16.h>

#include <algorithm>
#include <cub/device/device_scan.cuh>

#include "bench/cuda.hpp"
#include "bench/nccl_baseline_kernels.cuh"

namespace epcomm::bench {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;  // grid-stride loops cover the rest

int blocks_for(int64_t items, int64_t per_block) {
  return static_cast<int>(
      std::min<int64_t>(std::max<int64_t>((items + per_block - 1) / per_block, 1), kMaxBlocks));
}

// One thread per token: mask[r, t] for every rank r.
__global__ void route_kernel(RouteArgs a) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < a.num_tokens;
       t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t* idx = a.topk_idx + t * a.num_topk;
    for (int r = 0; r < a.num_ranks; ++r) {
      int32_t hit = 0;
      for (int j = 0; j < a.num_topk; ++j) hit |= (idx[j] >= 0 && idx[j] / a.num_local_experts == r) ? 1 : 0;
      a.mask[r * a.num_tokens + t] = hit;
    }
  }
}

// One thread per (rank, token) in rank-major order.
__global__ void positions_kernel(PositionArgs a) {
  const int64_t total = a.num_tokens * a.num_ranks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int r = static_cast<int>(i / a.num_tokens);
    const int64_t t = i % a.num_tokens;
    const int32_t pos = a.offsets[i];
    if (a.mask[i]) a.src_token[pos] = static_cast<int32_t>(t);
    a.send_pos[t * a.num_ranks + r] = a.mask[i] ? pos : -1;
    if (t == 0) {
      const int64_t last = i + a.num_tokens - 1;
      a.send_counts[r] = a.offsets[last] + a.mask[last] - pos;
    }
  }
}

// One block per send row; `Vec` is the copy width (16 bytes when every row start allows it).
template <typename Vec>
__global__ void gather_kernel(GatherArgs a) {
  const int64_t vecs = a.payload_bytes / static_cast<int64_t>(sizeof(Vec));
  for (int64_t row = blockIdx.x; row < a.num_rows; row += gridDim.x) {
    const int64_t t = a.src_token[row];
    const Vec* src = reinterpret_cast<const Vec*>(a.x + t * a.payload_bytes);
    uint8_t* dst_row = a.send + row * a.send_row_bytes;
    Vec* dst = reinterpret_cast<Vec*>(dst_row);
    for (int64_t i = threadIdx.x; i < vecs; i += blockDim.x) dst[i] = src[i];
    float* dst_scales = reinterpret_cast<float*>(dst_row + a.payload_bytes);
    for (int j = threadIdx.x; j < a.num_scales; j += blockDim.x)
      dst_scales[j] = a.scales[t * a.scale_stride_token + j * a.scale_stride_block];
  }
}

// One block per token; each thread reduces 8 channels (16 bytes) at a time.
__global__ void combine_kernel(CombineArgs a) {
  const int64_t chunks = a.hidden / 8;
  const uint4* back = reinterpret_cast<const uint4*>(a.back);
  uint4* out = reinterpret_cast<uint4*>(a.out);
  for (int64_t t = blockIdx.x; t < a.num_tokens; t += gridDim.x) {
    const int32_t* pos = a.send_pos + t * a.num_ranks;
    for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
      float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int r = 0; r < a.num_ranks; ++r) {
        if (pos[r] < 0) continue;
        const uint4 v = back[int64_t{pos[r]} * chunks + c];
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = __bfloat1622float2(h[i]);
          acc[2 * i] += f.x;
          acc[2 * i + 1] += f.y;
        }
      }
      uint4 packed;
      __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
      for (int i = 0; i < 4; ++i) o[i] = __floats2bfloat162_rn(acc[2 * i], acc[2 * i + 1]);
      out[t * chunks + c] = packed;
    }
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

void launch_route(const RouteArgs& args, cudaStream_t stream) {
  if (args.num_tokens == 0) return;
  route_kernel<<<blocks_for(args.num_tokens, kThreads), kThreads, 0, stream>>>(args);
  BENCH_CUDA(cudaGetLastError());
}

void exclusive_scan(void* temp, std::size_t& temp_bytes, const int32_t* in, int32_t* out, int64_t count,
                    cudaStream_t stream) {
  BENCH_CUDA(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, in, out, count, stream));
}

void launch_positions(const PositionArgs& args, cudaStream_t stream) {
  const int64_t total = args.num_tokens * args.num_ranks;
  if (total == 0) return;
  positions_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(args);
  BENCH_CUDA(cudaGetLastError());
}

void launch_gather(const GatherArgs& args, cudaStream_t stream) {
  BENCH_CHECK_ARG(args.payload_bytes % 4 == 0 && args.send_row_bytes % 4 == 0,
                  "gather: payload_bytes and send_row_bytes must be multiples of 4, given ",
                  args.payload_bytes, " and ", args.send_row_bytes);
  if (args.num_rows == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>(args.num_rows, kMaxBlocks));
  const bool wide = args.payload_bytes % 16 == 0 && args.send_row_bytes % 16 == 0 && aligned16(args.x) &&
                    aligned16(args.send);
  if (wide) {
    gather_kernel<uint4><<<blocks, kThreads, 0, stream>>>(args);
  } else {
    gather_kernel<uint32_t><<<blocks, kThreads, 0, stream>>>(args);
  }
  BENCH_CUDA(cudaGetLastError());
}

void launch_combine(const CombineArgs& args, cudaStream_t stream) {
  BENCH_CHECK_ARG(args.hidden % 8 == 0, "combine: hidden must be a multiple of 8, given ", args.hidden);
  if (args.num_tokens == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>(args.num_tokens, kMaxBlocks));
  combine_kernel<<<blocks, kThreads, 0, stream>>>(args);
  BENCH_CUDA(cudaGetLastError());
}

}  // namespace epcomm::bench
