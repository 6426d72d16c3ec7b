// What a short kernel's CUDA-event time holds beside its blocks' own span (bench/NOTES.md 11.62:
// ~2.8 us of the fused preamble's `preamble_us` lie outside its traced span). Each case is one launch
// queued behind a ~30 us spin on the stream (so the host's launch latency is not in it), between two
// events; every block stamps %globaltimer at entry and at exit (atomicMin / atomicMax), so
//   event_us - span_us = the launch's start before the first block + its end after the last block.
// The cases differ only in what the blocks do last: nothing; 16 KiB of stores to device memory; the
// same to mapped pinned host memory (as notify's host counts); that plus one system-scope release of
// a host word after a block barrier (notify's host_ready); a system-scope fence alone; and the grid
// shape (1 block or 32, 1,024 threads: the fused launch's). Prints medians of kReps launches.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/ptx.cuh"  // globaltimer, st_release_sys, fence_acq_rel_sys
#include "gpu_pair.cuh"  // CK, median, open_one

namespace {

constexpr int kReps = 60;
constexpr int kWords = 4096;  // 16 KiB of int32 a case writes at its end (spread over the grid)

enum class Tail { kNone, kDeviceStores, kHostStores, kHostStoresRelease, kFenceSys };

struct Span {
  unsigned long long first_entry, last_exit;
};

__global__ void spin_us(double us) {
  const std::uint64_t t0 = epcomm::ptx::globaltimer();
  while (static_cast<double>(epcomm::ptx::globaltimer() - t0) < us * 1000.0) {
  }
}

__global__ void __launch_bounds__(1024, 1)
    tail_kernel(Tail tail, int* device_words, int* host_words, std::uint64_t* host_ready, std::uint64_t seq,
                Span* span) {
  if (threadIdx.x == 0) atomicMin(&span->first_entry, epcomm::ptx::globaltimer());
  __syncthreads();
  const int tid = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int threads = static_cast<int>(gridDim.x * blockDim.x);
  switch (tail) {
    case Tail::kNone:
      break;
    case Tail::kDeviceStores:
      for (int i = tid; i < kWords; i += threads) device_words[i] = static_cast<int>(seq) + i;
      break;
    case Tail::kHostStores:
    case Tail::kHostStoresRelease:
      for (int i = tid; i < kWords; i += threads) host_words[i] = static_cast<int>(seq) + i;
      if (tail == Tail::kHostStoresRelease) {
        __syncthreads();
        if (threadIdx.x == 0 && blockIdx.x == 0) epcomm::ptx::st_release_sys(host_ready, seq);
      }
      break;
    case Tail::kFenceSys:
      if (threadIdx.x == 0) epcomm::ptx::fence_acq_rel_sys();
      break;
  }
  __syncthreads();
  if (threadIdx.x == 0) atomicMax(&span->last_exit, epcomm::ptx::globaltimer());
}

int run_case(const char* name, Tail tail, int blocks, cudaStream_t s, int* d_words, int* h_words,
             std::uint64_t* h_ready, Span* d_span) {
  cudaEvent_t start, stop;
  CK(cudaEventCreate(&start));
  CK(cudaEventCreate(&stop));
  int* h_words_dev = nullptr;
  std::uint64_t* h_ready_dev = nullptr;
  CK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h_words_dev), h_words, 0));
  CK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&h_ready_dev), h_ready, 0));
  std::vector<double> event_us, span_us;
  for (int r = 0; r < kReps; ++r) {
    const Span init{~0ull, 0ull};
    CK(cudaMemcpyAsync(d_span, &init, sizeof(Span), cudaMemcpyHostToDevice, s));
    spin_us<<<1, 1, 0, s>>>(30.0);
    CK(cudaGetLastError());
    CK(cudaEventRecord(start, s));
    tail_kernel<<<blocks, 1024, 0, s>>>(tail, d_words, h_words_dev, h_ready_dev, static_cast<std::uint64_t>(r + 1),
                                        d_span);
    CK(cudaGetLastError());
    CK(cudaEventRecord(stop, s));
    Span got{};
    CK(cudaMemcpyAsync(&got, d_span, sizeof(Span), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    float ms = 0.0f;
    CK(cudaEventElapsedTime(&ms, start, stop));
    if (r < 5) continue;  // warm-up: code fetch, first touches of the mapped pages
    event_us.push_back(1000.0 * ms);
    span_us.push_back(static_cast<double>(got.last_exit - got.first_entry) / 1000.0);
  }
  const double e = median(event_us), sp = median(span_us);
  std::printf("%-28s %6d %10.2f %9.2f %12.2f\n", name, blocks, e, sp, e - sp);
  CK(cudaEventDestroy(start));
  CK(cudaEventDestroy(stop));
  return 0;
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  cudaStream_t s;
  CK(open_one(prop, s));
  std::printf("# drain_probe on %s: medians of %d launches, each behind a 30 us spin (us)\n", prop.name,
              kReps - 5);
  int* d_words = nullptr;
  Span* d_span = nullptr;
  int* h_words = nullptr;
  std::uint64_t* h_ready = nullptr;
  CK(cudaMalloc(&d_words, sizeof(int) * kWords));
  CK(cudaMalloc(&d_span, sizeof(Span)));
  CK(cudaHostAlloc(&h_words, sizeof(int) * kWords, cudaHostAllocMapped));
  CK(cudaHostAlloc(&h_ready, sizeof(std::uint64_t), cudaHostAllocMapped));
  std::printf("%-28s %6s %10s %9s %12s\n", "last work", "blocks", "event_us", "span_us", "outside_us");
  const struct {
    const char* name;
    Tail tail;
  } cases[] = {{"nothing", Tail::kNone},
               {"16 KiB to device memory", Tail::kDeviceStores},
               {"16 KiB to mapped host", Tail::kHostStores},
               {"host stores + release.sys", Tail::kHostStoresRelease},
               {"fence.acq_rel.sys", Tail::kFenceSys}};
  for (const int blocks : {1, 32})
    for (const auto& c : cases)
      if (run_case(c.name, c.tail, blocks, s, d_words, h_words, h_ready, d_span) != 0) return 1;
  CK(cudaFreeHost(h_words));
  CK(cudaFreeHost(h_ready));
  CK(cudaFree(d_words));
  CK(cudaFree(d_span));
  CK(cudaStreamDestroy(s));
  return 0;
}
