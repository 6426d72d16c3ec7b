// Cooperative copies used by the high-throughput kernels. Device code only.
#pragma once

#include <cstdint>

#include "kernels/ptx.cuh"

namespace epcomm {

// Block-wide copy of `bytes` (a multiple of 16, both pointers 16-byte aligned) of data another
// GPU wrote and this block acquired: coherent loads, streaming stores.
__device__ __forceinline__ void block_copy_acquired_v4(void* dst, const void* src, std::size_t bytes) {
  const auto* s = static_cast<const int4*>(src);
  auto* d = static_cast<int4*>(dst);
  const std::size_t n = bytes / 16;
  constexpr int kUnroll = 4;
  std::size_t i = threadIdx.x;
  for (; i + (kUnroll - 1) * blockDim.x < n; i += kUnroll * blockDim.x) {
    int4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = ptx::ld_v4(s + i + u * blockDim.x);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) ptx::st_na_v4(d + i + u * blockDim.x, v[u]);
  }
  for (; i < n; i += blockDim.x) ptx::st_na_v4(d + i, ptx::ld_v4(s + i));
}

// Block-wide copy of `bytes` (a multiple of 4) between 4-byte aligned buffers.
__device__ __forceinline__ void block_copy_acquired_b32(void* dst, const void* src, std::size_t bytes) {
  const auto* s = static_cast<const volatile std::int32_t*>(src);
  auto* d = static_cast<std::int32_t*>(dst);
  for (std::size_t i = threadIdx.x; i < bytes / 4; i += blockDim.x) d[i] = s[i];
}

// Block-wide copy of `bytes` (a multiple of 16) of read-only local data to a peer (or local)
// buffer: non-coherent loads (the source does not change during the kernel), streaming stores.
__device__ __forceinline__ void block_copy_readonly_v4(void* dst, const void* src, std::size_t bytes) {
  const auto* s = static_cast<const int4*>(src);
  auto* d = static_cast<int4*>(dst);
  const std::size_t n = bytes / 16;
  constexpr int kUnroll = 4;
  std::size_t i = threadIdx.x;
  for (; i + (kUnroll - 1) * blockDim.x < n; i += kUnroll * blockDim.x) {
    int4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = ptx::ld_nc_na_v4(s + i + u * blockDim.x);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) ptx::st_na_v4(d + i + u * blockDim.x, v[u]);
  }
  for (; i < n; i += blockDim.x) ptx::st_na_v4(d + i, ptx::ld_nc_na_v4(s + i));
}

}  // namespace epcomm
