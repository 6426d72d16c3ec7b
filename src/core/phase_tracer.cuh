// Phase timestamps a kernel records for a diagnostic trace (EPCOMM_LL_TRACE: the low-latency
// kernels; EPCOMM_HT_TRACE: notify). Device code only.
#pragma once

#include <cstdint>

#include "core/ptx.cuh"

namespace epcomm {

// Thread 0 (or `marker`) of every block stores %globaltimer at each of kPoints points into the block's entry
// of the call's ring slot, trace[((call % kRing) * blocks + block) * kPoints + point] (by default blocks =
// gridDim.x, block = blockIdx.x; a block that traces alone, as notify's in the fused layout-and-notify
// launch, passes 1 and 0); nothing when `trace` is null (tracing off).
template <int kRing, int kPoints>
struct PhaseTracer {
  std::uint64_t* stamps = nullptr;  // this block's entry, or null
  __device__ PhaseTracer(std::uint64_t* trace, std::uint64_t call)
      : PhaseTracer(trace, call, gridDim.x, blockIdx.x) {}
  // `marker`: the block's thread that stamps (thread 0 unless a point is reached by another).
  __device__ PhaseTracer(std::uint64_t* trace, std::uint64_t call, unsigned blocks, unsigned block,
                         unsigned marker = 0) {
    if (trace != nullptr && threadIdx.x == marker)
      stamps = trace + ((call % kRing) * blocks + block) * kPoints;
  }
  __device__ __forceinline__ void mark(int point, std::uint64_t when) const {
    if (stamps != nullptr) stamps[point] = when;
  }
  __device__ __forceinline__ void mark(int point) const {
    if (stamps != nullptr) stamps[point] = ptx::globaltimer();
  }
  // Every point of the entry zeroed (a call that stops early leaves no older call's stamps).
  __device__ __forceinline__ void clear() const {
    if (stamps != nullptr)
      for (int p = 0; p < kPoints; ++p) stamps[p] = 0;
  }
};

}  // namespace epcomm
