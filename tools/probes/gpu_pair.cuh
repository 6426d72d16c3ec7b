// Shared by the probes: the CK error macro, the median of samples, a warp's copy step, opening the
// one GPU a probe runs on, and timing one kernel launch on both GPUs of a pair at once.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <vector>

// In main() and other int-returning functions: prints a failing CUDA call and returns 1.
#define CK(x)                                                               \
  do {                                                                      \
    cudaError_t e = (x);                                                    \
    if (e != cudaSuccess) {                                                 \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); \
      return 1;                                                             \
    }                                                                       \
  } while (0)

// The median of a probe's samples (the upper one of an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One warp copies pieces [base, base + 256) of `n` (16 bytes each) from src to dst, 8 in flight per
// lane: plain loads and stores, the pattern the probes measure.
__device__ __forceinline__ void warp_copy_256(const int4* src, int4* dst, std::size_t base, std::size_t n) {
  const std::size_t lane = threadIdx.x % 32;
  int4 v[8];
#pragma unroll
  for (int u = 0; u < 8; ++u)
    if (base + u * 32 + lane < n) v[u] = src[base + u * 32 + lane];
#pragma unroll
  for (int u = 0; u < 8; ++u)
    if (base + u * 32 + lane < n) dst[base + u * 32 + lane] = v[u];
}

// GPU 0 for a one-GPU probe: its properties (for the report's header) and a non-blocking stream.
inline cudaError_t open_one(cudaDeviceProp& prop, cudaStream_t& stream) {
  cudaError_t e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, 0);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  return e;
}

// GPUs 0 and 1: peer access both ways, a stream and two timing events on each.
inline cudaError_t open_pair(cudaStream_t (&st)[2], cudaEvent_t (&e0)[2], cudaEvent_t (&e1)[2]) {
  for (int d = 0; d < 2; ++d) {
    cudaError_t e = cudaSetDevice(d);
    if (e == cudaSuccess) e = cudaDeviceEnablePeerAccess(1 - d, 0);
    if (e == cudaSuccess) e = cudaStreamCreate(&st[d]);
    if (e == cudaSuccess) e = cudaEventCreate(&e0[d]);
    if (e == cudaSuccess) e = cudaEventCreate(&e1[d]);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// Runs launch(d, stream) on GPUs 0 and 1 at once, `reps` times, each GPU timed by events on its own
// stream, and stores in *best the best over the reps after the first (a warm-up) of the slower
// GPU's GB/s for `bytes`. Returns the first failing call's status.
template <typename Launch>
cudaError_t time_pair(cudaStream_t (&st)[2], cudaEvent_t (&e0)[2], cudaEvent_t (&e1)[2], std::size_t bytes,
                      int reps, Launch launch, float* best) {
  *best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    for (int d = 0; d < 2; ++d) {
      cudaError_t e = cudaSetDevice(d);
      if (e == cudaSuccess) e = cudaEventRecord(e0[d], st[d]);
      if (e == cudaSuccess) e = launch(d, st[d]);
      if (e == cudaSuccess) e = cudaEventRecord(e1[d], st[d]);
      if (e != cudaSuccess) return e;
    }
    float worst = 1e30f;
    for (int d = 0; d < 2; ++d) {
      float ms = 0;
      cudaError_t e = cudaSetDevice(d);
      if (e == cudaSuccess) e = cudaEventSynchronize(e1[d]);
      if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, e0[d], e1[d]);
      if (e != cudaSuccess) return e;
      const float gbps = static_cast<float>(bytes) / (ms * 1e-3f) / 1e9f;
      if (gbps < worst) worst = gbps;
    }
    if (rep > 0 && worst > *best) *best = worst;
  }
  return cudaSuccess;
}
