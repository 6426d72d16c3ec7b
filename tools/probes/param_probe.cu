// What the list blocks' short steps cost on an SM (bench/NOTES.md 11.91: at one token a list block
// takes ~0.9 us from its credits to its 8 ids binned and ~0.9 more to their places stored, for a
// few hundred instructions). A grid of 132 blocks of 512 threads (the low-latency kernels' shape) is
// launched back to back with a 4 KB parameter block (LlDispatchArgs carries the peers' workspace
// pointers); warp 0 of every block times, by %globaltimer, eight of one step and divides:
//   param, cold     8 reads of kernel parameters 256 bytes apart, each index from the last value
//                   (LDC indexed by a register, as a holder's workspace pointer is read), the
//                   launch's first touch of those lines on this SM
//   param, again    the same 8 reads once more (the lines now in the SM's constant cache)
//   param, 1 line   8 reads of one line's words (the first cold)
//   param, 8 at once  8 cold reads of lines 16-23 at fixed offsets (ULDC: fields every lane reads
//                   alike), all issued before any is used
//   l2 load         8 dependent loads from a 4 KiB buffer every launch reads (L2-resident)
//   division        8 dependent 32-bit divisions by a launch-time divisor (ll_split by L)
//   match, 8 ids    8 independent __match_any_sync of which lanes 0-7 hold distinct values and
//                   the others -1 (a list block's span at one token), then their results used
//   match, 1 value  the same with every lane's value equal
//   match, 32 ids   the same with 32 distinct values
//   vote            8 independent __any_sync, then their results used
// Prints, per step, the medians over launches of the median and the slowest block's ns per step.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/ptx.cuh"  // globaltimer
#include "gpu_pair.cuh"  // CK, median, open_one

namespace {

constexpr int kBlocks = 132, kThreads = 512, kReps = 200, kWarmup = 20, kSteps = 8;
constexpr int kWords = 1024;    // 8 KiB of parameters (a DomainView's peers' pointers)
constexpr int kLineWords = 32;  // 256 bytes between the cold reads
constexpr int kCases = 10;
constexpr int kL2Words = 1024;  // the L2-resident buffer (4 KiB of ints)

struct Params {
  std::uint64_t w[kWords];  // w[i] = i: each value is its own index's offset source
};

// A step's last result is stored to `sink` when it equals `never` (a launch argument no result
// takes): the compiler can neither drop the step nor prove the test false, and the timer read that
// follows waits for the result (a warp issues in order).
__device__ __forceinline__ void keep(std::uint64_t x, std::uint64_t never, int* sink) {
  if (x == never) *sink = static_cast<int>(x);
}

__global__ void __launch_bounds__(kThreads, 1)
    probe_kernel(const Params p, const int* l2, int divisor, std::uint64_t never, std::uint64_t* ns,
                 int* sink) {
  if (threadIdx.x >= 32) return;
  const int lane = static_cast<int>(threadIdx.x);
  std::uint64_t out[kCases];
  // param, cold / again: the index of read k + 1 depends on read k's value (w[i] >> 20 is 0), and
  // the second pass's first on the first pass's last (so the compiler cannot reuse the first's).
  // Each index has a lane's term (0 at run time, unknown to the compiler), so the reads are the
  // vector LDC of a holder's pointer, not the uniform ULDC of a field every lane reads alike.
  std::uint64_t x = divisor > 1000 ? static_cast<std::uint64_t>(lane) : 0;
  for (int pass = 0; pass < 2; ++pass) {
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) x = p.w[(k + 1) * kLineWords + static_cast<int>(x >> 20)];
    keep(x, never, sink);
    out[pass] = epcomm::ptx::globaltimer() - t0;
  }
  {  // param, 1 line: words 1..8 of line 14 (untouched above)
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) x = p.w[14 * kLineWords + 1 + k + static_cast<int>(x >> 20)];
    keep(x, never, sink);
    out[2] = epcomm::ptx::globaltimer() - t0;
  }
  {  // param, 8 at once: lines 16-23, fixed offsets (ULDC, as a field every lane reads alike), all
     // issued before any is used
    std::uint64_t y = 0;
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) y += p.w[(16 + k) * kLineWords];
    keep(y, never, sink);
    out[3] = epcomm::ptx::globaltimer() - t0;
  }
  {  // l2 load: l2[i] = (i + 97) % kL2Words, followed from lane's start
    int i = lane;
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) i = __ldcg(l2 + i);  // L2, not L1
    keep(static_cast<std::uint64_t>(i), never, sink);
    out[4] = epcomm::ptx::globaltimer() - t0;
  }
  {  // division
    int q = 1000003 + lane;
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) q = (q + 1000003) / divisor;
    keep(static_cast<std::uint64_t>(q), never, sink);
    out[5] = epcomm::ptx::globaltimer() - t0;
  }
  // The matches: 8 values a lane, per case; the results summed after all 8 are issued.
  const int ids8 = lane < 8 ? lane + divisor : -1, one = divisor, ids32 = lane + divisor;
  const int keys[3] = {ids8, one, ids32};
  for (int c = 0; c < 3; ++c) {
    int key[kSteps];
#pragma unroll
    for (int k = 0; k < kSteps; ++k) key[k] = keys[c] + (k << 8) * (keys[c] >= 0);
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
    unsigned acc = 0;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) acc += __match_any_sync(0xffffffffu, key[k]);
    keep(acc, never, sink);
    out[6 + c] = epcomm::ptx::globaltimer() - t0;
  }
  {  // vote
    const std::uint64_t t0 = epcomm::ptx::globaltimer();
    unsigned acc = 0;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) acc += __any_sync(0xffffffffu, ids8 + k >= divisor + 7) ? 1u << k : 0u;
    keep(acc, never, sink);
    out[9] = epcomm::ptx::globaltimer() - t0;
  }
  if (lane == 0)
    for (int c = 0; c < kCases; ++c) ns[static_cast<std::size_t>(blockIdx.x) * kCases + c] = out[c];
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  cudaStream_t s;
  CK(open_one(prop, s));
  std::printf(
      "# param_probe on %s: %d blocks x %d threads (warp 0 times), medians of %d launches, ns per step\n",
      prop.name, kBlocks, kThreads, kReps - kWarmup);
  Params p{};
  for (int i = 0; i < kWords; ++i) p.w[i] = static_cast<std::uint64_t>(i);
  std::vector<int> chain(kL2Words);
  for (int i = 0; i < kL2Words; ++i) chain[i] = (i + 97) % kL2Words;
  int* l2 = nullptr;
  int* sink = nullptr;
  std::uint64_t* ns = nullptr;
  CK(cudaMalloc(&l2, kL2Words * sizeof(int)));
  CK(cudaMalloc(&sink, sizeof(int)));
  CK(cudaMalloc(&ns, static_cast<std::size_t>(kReps) * kBlocks * kCases * sizeof(std::uint64_t)));
  CK(cudaMemcpy(l2, chain.data(), kL2Words * sizeof(int), cudaMemcpyHostToDevice));
  for (int r = 0; r < kReps; ++r) {
    probe_kernel<<<kBlocks, kThreads, 0, s>>>(p, l2, 5, ~std::uint64_t{0},
                                              ns + static_cast<std::size_t>(r) * kBlocks * kCases, sink);
    CK(cudaGetLastError());
  }
  CK(cudaStreamSynchronize(s));
  std::vector<std::uint64_t> got(static_cast<std::size_t>(kReps) * kBlocks * kCases);
  CK(cudaMemcpy(got.data(), ns, got.size() * sizeof(std::uint64_t), cudaMemcpyDeviceToHost));
  const char* names[kCases] = {"param, cold", "param, again", "param, 1 line",  "param, 8 at once", "l2 load",
                               "division",    "match, 8 ids", "match, 1 value", "match, 32 ids",    "vote"};
  std::printf("%-16s %10s %10s\n", "step", "med_ns", "last_ns");
  for (int c = 0; c < kCases; ++c) {
    std::vector<double> med, last;
    for (int r = kWarmup; r < kReps; ++r) {
      std::vector<double> per;
      for (int b = 0; b < kBlocks; ++b)
        per.push_back(static_cast<double>(got[(static_cast<std::size_t>(r) * kBlocks + b) * kCases + c]) /
                      kSteps);
      med.push_back(median(per));
      last.push_back(*std::max_element(per.begin(), per.end()));
    }
    std::printf("%-16s %10.1f %10.1f\n", names[c], median(med), median(last));
  }
  CK(cudaFree(l2));
  CK(cudaFree(sink));
  CK(cudaFree(ns));
  return 0;
}
