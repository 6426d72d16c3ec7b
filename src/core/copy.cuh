// Warp-cooperative copies used by the high-throughput kernels. Device code only.
#pragma once

#include <cstdint>

#include "core/ptx.cuh"

namespace epcomm {

// Where a warp copy reads from: data another GPU wrote and the warp acquired (plain loads), or a
// kernel input read once (loads that skip L1). Neither takes the non-coherent path (ptx::ld_na_v4).
enum class CopySource { kAcquired, kReadOnly };

// Warp-wide copy of `bytes` (a multiple of 16, both pointers 16-byte aligned): kUnroll pieces in
// flight per lane, streaming stores.
template <CopySource kSource>
__device__ __forceinline__ void warp_copy_v4(void* dst, const void* src, std::size_t bytes) {
  const auto* s = static_cast<const int4*>(src);
  auto* d = static_cast<int4*>(dst);
  const std::size_t n = bytes / 16;
  const std::size_t lane = threadIdx.x % 32;
  constexpr int kUnroll = 16;
  auto load = [](const int4* p) {
    return kSource == CopySource::kAcquired ? ptx::ld_v4(p) : ptx::ld_na_v4(p);
  };
  std::size_t i = lane;
  for (; i + (kUnroll - 1) * 32 < n; i += kUnroll * 32) {
    int4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = load(s + i + u * 32);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) ptx::st_na_v4(d + i + u * 32, v[u]);
  }
  for (; i < n; i += 32) ptx::st_na_v4(d + i, load(s + i));
}

// Warp-wide copy of `bytes` (a multiple of 4) between 4-byte aligned buffers.
__device__ __forceinline__ void warp_copy_acquired_b32(void* dst, const void* src, std::size_t bytes) {
  const auto* s = static_cast<const volatile std::int32_t*>(src);
  auto* d = static_cast<std::int32_t*>(dst);
  for (std::size_t i = threadIdx.x % 32; i < bytes / 4; i += 32) d[i] = s[i];
}

}  // namespace epcomm
