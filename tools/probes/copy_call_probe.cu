// What queueing device copies costs the host: N device-to-device copies (rows of x, as the
// copy-engine dispatch queues them) as N cudaMemcpyAsync calls or one cudaMemcpyBatchAsync, with
// and without the overlap-with-compute hint, while a long kernel keeps the stream busy (so no call
// waits for the GPU). Prints the median host microseconds per queueing of N copies, and how long
// the GPU took to run them: within GPU 0, then (with 2 GPUs) from GPU 0 to GPU 1 over NVLink.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "gpu_pair.cuh"     // CK
#include "core/ptx.cuh"  // globaltimer

namespace {

__global__ void spin_kernel(std::uint64_t ns) {
  const std::uint64_t until = epcomm::ptx::globaltimer() + ns;
  while (epcomm::ptx::globaltimer() < until) {
  }
}

using Clock = std::chrono::steady_clock;

enum class Way { kSingle, kBatch, kBatchHint };
const char* name(Way w) {
  return w == Way::kSingle ? "cudaMemcpyAsync x N" : w == Way::kBatch ? "batch" : "batch + overlap hint";
}

// Queues n copies of `bytes` each (disjoint rows) on `s`.
cudaError_t queue(Way way, int n, char* dst, const char* src, std::size_t bytes, cudaStream_t s) {
  if (way == Way::kSingle) {
    for (int i = 0; i < n; ++i) {
      const cudaError_t e = cudaMemcpyAsync(dst + i * bytes, src + i * bytes, bytes, cudaMemcpyDefault, s);
      if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
  }
  std::vector<void*> dsts(n);
  std::vector<const void*> srcs(n);
  std::vector<std::size_t> sizes(n, bytes);
  for (int i = 0; i < n; ++i) {
    dsts[i] = dst + i * bytes;
    srcs[i] = src + i * bytes;
  }
  cudaMemcpyAttributes attrs{};
  attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  if (way == Way::kBatchHint) attrs.flags = cudaMemcpyFlagPreferOverlapWithCompute;
  std::size_t first = 0;
  return cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), n, &attrs, &first, 1, s);
}

// The table for copies from src to dst (58 MB in all) queued on s; 1 on a CUDA error.
int measure(const char* where, char* dst, const char* src, std::size_t total, cudaStream_t s) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::printf("# %s\n%-22s %4s %12s %14s %12s\n", where, "way", "N", "host_us", "host_us/copy", "gpu_us");
  for (const Way way : {Way::kSingle, Way::kBatch, Way::kBatchHint}) {
    for (const int n : {1, 4, 16, 64}) {
      const std::size_t bytes = total / static_cast<std::size_t>(n) / 16 * 16;
      std::vector<double> host, gpu;
      for (int rep = 0; rep < 30; ++rep) {
        spin_kernel<<<1, 1, 0, s>>>(2000000);  // 2 ms: every call below returns before the copies run
        CK(cudaGetLastError());
        CK(cudaEventRecord(a, s));
        const auto t0 = Clock::now();
        CK(queue(way, n, dst, src, bytes, s));
        const auto t1 = Clock::now();
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms = 0.0f;
        CK(cudaEventElapsedTime(&ms, a, b));
        host.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        gpu.push_back(1000.0 * ms);
      }
      std::sort(host.begin(), host.end());
      std::sort(gpu.begin(), gpu.end());
      const double h = host[host.size() / 2];
      std::printf("%-22s %4d %12.1f %14.2f %12.1f\n", name(way), n, h, h / n, gpu[gpu.size() / 2]);
    }
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return 0;
}

}  // namespace

int main() {
  const std::size_t total = std::size_t{58} << 20;  // about one ht-dsv3 rank's rows
  char *src = nullptr, *dst = nullptr;
  CK(cudaSetDevice(0));
  CK(cudaMalloc(&src, total));
  CK(cudaMalloc(&dst, total));
  CK(cudaMemset(src, 1, total));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  if (measure("within GPU 0", dst, src, total, s) != 0) return 1;
  int devices = 0, can = 0;
  CK(cudaGetDeviceCount(&devices));
  if (devices >= 2) CK(cudaDeviceCanAccessPeer(&can, 0, 1));
  if (can) {
    char* peer = nullptr;
    CK(cudaSetDevice(1));
    CK(cudaMalloc(&peer, total));
    CK(cudaSetDevice(0));
    CK(cudaDeviceEnablePeerAccess(1, 0));
    if (measure("GPU 0 to GPU 1 (peer access, NVLink)", peer, src, total, s) != 0) return 1;
    CK(cudaFree(peer));
  } else {
    std::printf("# GPU 0 to GPU 1: skipped (%d GPU%s)\n", devices,
                devices == 1 ? "" : "s without peer access");
  }
  CK(cudaFree(src));
  CK(cudaFree(dst));
  return 0;
}
