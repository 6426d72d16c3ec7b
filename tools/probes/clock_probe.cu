// The SM clock a short kernel runs at, by how it is launched: a kernel that spins a fixed number of
// SM cycles stamps %clock64 and %globaltimer at its start and end, so cycles / ns is the clock it
// saw. Launched back to back (the GPU busy, as in a CUDA-graph replay), and one at a time with the
// host waiting for it and then idling 50 us, 500 us or 5 ms (as the benchmark's preamble pass does:
// each call's host reads its counts, ~500 us apart). Prints the median clock and the median ns of
// the spin for each regime. Then the instruction cache: a kernel runs the same straight-line code
// (kCodeOps multiply-adds, 16 bytes of code each) twice in one launch and times each pass; the
// first fetches the code, the second finds it cached (bench/NOTES.md 11.39).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "core/ptx.cuh"  // globaltimer
#include "gpu_pair.cuh"  // CK, median, open_one

namespace {

struct Stamp {
  unsigned long long cycles, ns;
};

__global__ void spin_cycles(long long cycles, Stamp* out) {
  if (threadIdx.x != 0) return;
  const std::uint64_t t0 = epcomm::ptx::globaltimer();
  const long long c0 = clock64();
  while (clock64() - c0 < cycles) {
  }
  const long long c1 = clock64();
  const std::uint64_t t1 = epcomm::ptx::globaltimer();
  *out = {static_cast<unsigned long long>(c1 - c0), t1 - t0};
}

constexpr int kCodeOps = 2048;  // 32 KiB of code

// Two timed passes over the same kCodeOps dependent multiply-adds (8 chains; the loop is kept
// rolled, so both passes run the same instructions): out[0] and out[1] the ns of each, from thread 0.
// kSalt makes another instantiation's code differ (an immediate operand), at the same size.
template <unsigned kSalt>
__global__ void straight_line(unsigned m, unsigned c, unsigned long long* out, unsigned* sink) {
  unsigned acc[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) acc[k] = threadIdx.x + k;
#pragma unroll 1
  for (int pass = 0; pass < 2; ++pass) {
    __syncthreads();
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int i = 0; i < kCodeOps / 8; ++i)
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] = acc[k] * m + (c ^ (kSalt + k));
    __syncthreads();
    if (threadIdx.x == 0) out[pass] = epcomm::ptx::globaltimer() - t0;
    m += 2;  // the next pass's values differ, its instructions do not
  }
  unsigned r = 0;
#pragma unroll
  for (int k = 0; k < 8; ++k) r ^= acc[k];
  if (r == 0x12345u) *sink = r;
}

// Launches 8 other instantiations of straight_line on every SM (256 KiB of code, more than an
// SM's instruction caches hold), so the next kernel finds its code only in L2.
template <unsigned... kSalts>
int evict_code(std::integer_sequence<unsigned, kSalts...>, int sms, unsigned long long* d_ns,
               unsigned* d_sink, cudaStream_t s) {
  (straight_line<kSalts + 1><<<sms, 32, 0, s>>>(3u, 7u, d_ns + 2, d_sink), ...);
  CK(cudaGetLastError());
  return 0;
}

// `n` launches of straight_line<0> with `threads` threads, the host idling `idle_us` between them
// and, with `evict`, other code run on every SM before each; prints the median ns of the first and
// the second pass.
int code_regime(const char* name, int n, int threads, int idle_us, bool evict, int sms, unsigned long long* d_ns,
                unsigned* d_sink, cudaStream_t s) {
  std::vector<double> first, second;
  for (int i = 0; i < n; ++i) {
    unsigned long long ns[2];
    if (evict && evict_code(std::make_integer_sequence<unsigned, 8>{}, sms, d_ns, d_sink, s) != 0) return 1;
    straight_line<0><<<1, threads, 0, s>>>(3u + 2u * i, 7u, d_ns, d_sink);
    CK(cudaGetLastError());
    CK(cudaMemcpyAsync(ns, d_ns, sizeof(ns), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    first.push_back(static_cast<double>(ns[0]));
    second.push_back(static_cast<double>(ns[1]));
    if (idle_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
  }
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  std::printf("%-44s %4d threads  %d ops (%d KiB)  first pass %7.2f us  second %7.2f us\n", name, threads,
              kCodeOps, kCodeOps * 16 / 1024, first[n / 2] / 1e3, second[n / 2] / 1e3);
  return 0;
}

// Runs `n` launches of a `cycles` spin, the host idling `idle_us` after each (0: back to back, no
// wait between); prints the median clock and spin time. Non-zero on a CUDA error (CK returns 1).
int regime(const char* name, int n, long long cycles, int idle_us, Stamp* d_out, cudaStream_t s) {
  std::vector<Stamp> host(n);
  if (idle_us == 0) {
    Stamp* many = nullptr;
    CK(cudaMalloc(&many, n * sizeof(Stamp)));
    for (int i = 0; i < n; ++i) spin_cycles<<<1, 1024, 0, s>>>(cycles, many + i);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(s));
    CK(cudaMemcpy(host.data(), many, n * sizeof(Stamp), cudaMemcpyDeviceToHost));
    CK(cudaFree(many));
  } else {
    for (int i = 0; i < n; ++i) {
      spin_cycles<<<1, 1024, 0, s>>>(cycles, d_out);
      CK(cudaGetLastError());
      CK(cudaMemcpyAsync(&host[i], d_out, sizeof(Stamp), cudaMemcpyDeviceToHost, s));
      CK(cudaStreamSynchronize(s));
      std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
    }
  }
  std::vector<double> mhz, ns;
  for (const Stamp& st : host) {
    mhz.push_back(1e3 * static_cast<double>(st.cycles) / static_cast<double>(st.ns));
    ns.push_back(static_cast<double>(st.ns));
  }
  std::printf("%-32s %6d launches  spin %7lld cycles  median %7.0f MHz  %8.2f us  (min %6.0f max %6.0f MHz)\n",
              name, n, cycles, median(mhz), median(ns) / 1e3, *std::min_element(mhz.begin(), mhz.end()),
              *std::max_element(mhz.begin(), mhz.end()));
  return 0;
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  cudaStream_t s;
  CK(open_one(prop, s));
  Stamp* d_out = nullptr;
  CK(cudaMalloc(&d_out, sizeof(Stamp)));
  std::printf("# %s; a spin of N SM cycles in one thread of a 1,024-thread block\n", prop.name);
  for (long long cycles : {4000LL, 20000LL}) {
    if (regime("back to back (warm-up)", 400, cycles, 0, d_out, s) != 0) return 1;
    if (regime("back to back", 400, cycles, 0, d_out, s) != 0) return 1;
    if (regime("host waits, then idles 50 us", 200, cycles, 50, d_out, s) != 0) return 1;
    if (regime("host waits, then idles 500 us", 200, cycles, 500, d_out, s) != 0) return 1;
    if (regime("host waits, then idles 5 ms", 100, cycles, 5000, d_out, s) != 0) return 1;
    if (regime("back to back again", 400, cycles, 0, d_out, s) != 0) return 1;
  }
  unsigned long long* d_ns = nullptr;
  unsigned* d_sink = nullptr;
  CK(cudaMalloc(&d_ns, 4 * sizeof(unsigned long long)));
  CK(cudaMalloc(&d_sink, sizeof(unsigned)));
  for (int threads : {32, 1024}) {
    if (code_regime("code: host waits, no idle", 100, threads, 0, false, prop.multiProcessorCount, d_ns, d_sink,
                    s) != 0)
      return 1;
    if (code_regime("code: host waits, then idles 500 us", 100, threads, 500, false, prop.multiProcessorCount, d_ns,
                    d_sink, s) != 0)
      return 1;
    if (code_regime("code: 256 KiB of other code on every SM first", 100, threads, 0, true, prop.multiProcessorCount,
                    d_ns, d_sink, s) != 0)
      return 1;
  }
  CK(cudaFree(d_ns));
  CK(cudaFree(d_sink));
  CK(cudaFree(d_out));
  CK(cudaStreamDestroy(s));
  return 0;
}
