// How long a load issued at a kernel's entry takes to come back (bench/NOTES.md 11.78: in the
// low-latency dispatch, loads issued at entry return after ~1.7-2.5 us, even at one token). A grid
// of 132 blocks of 512 threads (the low-latency kernels' shape) is launched back to back; thread 0
// of every block stamps %globaltimer at entry, issues one 16-byte load and stamps again once the
// value is in its registers (the second stamp's asm reads the value). The cases differ in where the
// loaded line is and what the grid and the stream do around it:
//   l2             a 64 KiB buffer every launch reads (L2-resident)
//   l2, acquire    the same, after the thread's own ld.acquire.sys of a counter (each wait's first
//                  look in the low-latency kernels; it also invalidates the SM's L1)
//   l2, peers      the same, while threads 480-511 of the block each issue ld.acquire.sys at entry
//                  (the credit look of ll_look_credits, by other threads of the block)
//   hbm            a line of a 512 MiB buffer no earlier launch read (cold in L2)
//   l2, writes     the L2-resident line while warps 1-15 of every block store 7.3 MB in all
//                  (the dispatch's receive writes, here at entry)
//   l2, after      the L2-resident line, each launch queued behind a kernel that stored 7.3 MB
//   hot, volatile  one 8-byte word every thread of the grid loads at entry with a volatile load
//                  (a system-scope load per warp: the low-latency kernels' seq read before 11.80);
//                  thread 0 times its own
//   hot, plain     the same word by a plain load (the warps of a block share one L1 fill)
//   credit path    not one load but the low-latency kernels' path to their credit wait, for a
//                  block with no work: every thread's volatile load of one control word, the last
//                  two threads' ld.acquire.sys of a credit word each, a block barrier-and; timed
//                  from entry to past the barrier. Then the same launched with programmatic
//                  dependent launch (griddepcontrol.wait first, as pdl_entry), and that with 32 KiB
//                  of dynamic shared memory (the direct dispatch's launch)
// Prints, per case, the medians over launches of the median and the last block's load time, and
// of the span from the first block's entry to the last block's load.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/ptx.cuh"  // globaltimer, ld_acquire_sys
#include "gpu_pair.cuh"  // CK, median, open_one
#include "timer_after.cuh"

namespace {

constexpr int kBlocks = 132, kThreads = 512, kReps = 200, kWarmup = 20;
constexpr std::size_t kSmallBytes = 64 << 10;
constexpr std::size_t kBigBytes = std::size_t{512} << 20;
constexpr std::size_t kWriteBytes = 7'340'032;  // the ll-dsv3 receive's FP8 rows

static_assert((std::size_t{kReps} << 16) * sizeof(int4) + kBlocks * 8 * sizeof(int4) <= kBigBytes,
              "every hbm launch reads lines of its own");

enum class Case { kL2, kL2Acquire, kL2Peers, kHbm, kL2Writes, kL2After, kHotVolatile, kHotPlain };

struct Stamp {
  std::uint64_t entry, loaded;
};

__global__ void __launch_bounds__(kThreads, 1)
    probe_kernel(Case c, const int4* line_base, std::uint64_t* counter, int4* writes, std::size_t write_words,
                 Stamp* stamps, int* sink) {
  const std::uint64_t entry = epcomm::ptx::globaltimer();
  const int t = static_cast<int>(threadIdx.x);
  if (c == Case::kL2Peers && t >= kThreads - 32) (void)epcomm::ptx::ld_acquire_sys(counter + t % 32);
  if (c == Case::kHotVolatile || c == Case::kHotPlain) {
    const std::uint64_t w = c == Case::kHotVolatile
                                ? *reinterpret_cast<const volatile std::uint64_t*>(counter + 32)
                                : counter[32];
    if (t == 0) {
      const std::uint64_t loaded =
          timer_after(make_int4(static_cast<int>(w), static_cast<int>(w >> 32), 0, 0), sink);
      stamps[blockIdx.x] = {entry, loaded};
    } else if (w == 0x7fffffffull) {
      *sink = t;  // never: keeps every thread's load
    }
    return;
  }
  if (t == 0) {
    if (c == Case::kL2Acquire) (void)epcomm::ptx::ld_acquire_sys(counter);
    const int4 v = line_base[blockIdx.x * 8];  // a 128-byte line of its own per block
    const std::uint64_t loaded = timer_after(v, sink);
    stamps[blockIdx.x] = {entry, loaded};
  } else if (c == Case::kL2Writes && t >= 32) {
    const std::size_t writers = static_cast<std::size_t>(kBlocks) * (kThreads - 32);
    const std::size_t me = static_cast<std::size_t>(blockIdx.x) * (kThreads - 32) + (t - 32);
    for (std::size_t i = me; i < write_words; i += writers) writes[i] = make_int4(t, 1, 2, 3);
  }
}

// The credit path (see the cases above); `pdl`: the kernel begins as pdl_entry does.
__global__ void __launch_bounds__(kThreads, 1)
    credit_path_kernel(bool pdl, const std::uint64_t* control, Stamp* stamps, int* sink) {
  if (pdl) {
    epcomm::ptx::wait_prior_grids();
    epcomm::ptx::allow_dependent_grids();
  }
  const std::uint64_t entry = epcomm::ptx::globaltimer();
  const int t = static_cast<int>(threadIdx.x);
  const std::uint64_t seq = *reinterpret_cast<const volatile std::uint64_t*>(control) + 1;
  std::uint64_t credits = seq;
  if (t >= kThreads - 2) credits = epcomm::ptx::ld_acquire_sys(control + 16 + (t & 1)) + seq;
  const bool ok = __syncthreads_and(credits >= seq);
  if (t == 0) {
    stamps[blockIdx.x] = {entry, epcomm::ptx::globaltimer()};
    if (!ok) *sink = 1;  // never
  }
}

__global__ void writer_kernel(int4* writes, std::size_t write_words) {
  const std::size_t n = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < write_words; i += n)
    writes[i] = make_int4(static_cast<int>(i), 1, 2, 3);
}

// One line (0; 1 after a failed copy): the medians over launches (past the warm-up) of the median and the last block's time
// and of the first entry to the last second stamp.
int report(const char* name, const Stamp* stamps) {
  std::vector<Stamp> got(static_cast<std::size_t>(kReps) * kBlocks);
  CK(cudaMemcpy(got.data(), stamps, got.size() * sizeof(Stamp), cudaMemcpyDeviceToHost));
  std::vector<double> med, last, span;
  for (int r = kWarmup; r < kReps; ++r) {
    std::vector<double> each;
    std::uint64_t first_entry = ~0ull, last_loaded = 0;
    for (int b = 0; b < kBlocks; ++b) {
      const Stamp& x = got[static_cast<std::size_t>(r) * kBlocks + b];
      each.push_back(static_cast<double>(x.loaded - x.entry) / 1000.0);
      first_entry = std::min(first_entry, x.entry);
      last_loaded = std::max(last_loaded, x.loaded);
    }
    med.push_back(median(each));
    last.push_back(*std::max_element(each.begin(), each.end()));
    span.push_back(static_cast<double>(last_loaded - first_entry) / 1000.0);
  }
  std::printf("%-22s %12.2f %12.2f %12.2f\n", name, median(med), median(last), median(span));
  return 0;
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  cudaStream_t s;
  CK(open_one(prop, s));
  std::printf("# entry_load_probe on %s: %d blocks x %d threads, medians of %d launches (us)\n", prop.name,
              kBlocks, kThreads, kReps - kWarmup);
  int4 *small = nullptr, *big = nullptr, *writes = nullptr;
  std::uint64_t* counter = nullptr;
  Stamp* stamps = nullptr;
  int* sink = nullptr;
  CK(cudaMalloc(&small, kSmallBytes));
  CK(cudaMalloc(&big, kBigBytes));
  CK(cudaMalloc(&writes, kWriteBytes));
  CK(cudaMalloc(&counter, 64 * sizeof(std::uint64_t)));
  CK(cudaMalloc(&stamps, kReps * kBlocks * sizeof(Stamp)));
  CK(cudaMalloc(&sink, sizeof(int)));
  CK(cudaMemset(small, 0, kSmallBytes));
  CK(cudaMemset(big, 0, kBigBytes));
  CK(cudaMemset(counter, 0, 64 * sizeof(std::uint64_t)));
  const std::size_t write_words = kWriteBytes / sizeof(int4);
  std::printf("%-22s %12s %12s %12s\n", "case", "median_blk", "last_blk", "grid_span");
  const struct {
    const char* name;
    Case c;
  } cases[] = {{"l2", Case::kL2},
               {"l2, acquire", Case::kL2Acquire},
               {"l2, peers", Case::kL2Peers},
               {"hbm", Case::kHbm},
               {"l2, writes", Case::kL2Writes},
               {"l2, after", Case::kL2After},
               {"hot, volatile", Case::kHotVolatile},
               {"hot, plain", Case::kHotPlain}};
  for (const auto& k : cases) {
    for (int r = 0; r < kReps; ++r) {
      // `hbm`: launch r reads lines 1 MiB apart from launch r - 1's, never read before.
      const int4* base = k.c == Case::kHbm ? big + (static_cast<std::size_t>(r) << 16) : small;
      if (k.c == Case::kL2After) writer_kernel<<<kBlocks, kThreads, 0, s>>>(writes, write_words);
      probe_kernel<<<kBlocks, kThreads, 0, s>>>(k.c, base, counter, writes, write_words,
                                                stamps + static_cast<std::size_t>(r) * kBlocks, sink);
      CK(cudaGetLastError());
    }
    CK(cudaStreamSynchronize(s));
    if (report(k.name, stamps) != 0) return 1;
  }
  const struct {
    const char* name;
    bool pdl;
    std::size_t smem;
  } paths[] = {
      {"credit path", false, 0}, {"credit path, pdl", true, 0}, {"credit path, pdl, 32K", true, 32 << 10}};
  CK(cudaFuncSetAttribute(credit_path_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 32 << 10));
  for (const auto& k : paths) {
    for (int r = 0; r < kReps; ++r) {
      cudaLaunchAttribute attr{};
      attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr.val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t config{};
      config.gridDim = dim3(kBlocks);
      config.blockDim = dim3(kThreads);
      config.dynamicSmemBytes = k.smem;
      config.stream = s;
      config.attrs = &attr;
      config.numAttrs = k.pdl ? 1 : 0;
      CK(cudaLaunchKernelEx(&config, credit_path_kernel, k.pdl, static_cast<const std::uint64_t*>(counter),
                            stamps + static_cast<std::size_t>(r) * kBlocks, sink));
    }
    CK(cudaStreamSynchronize(s));
    if (report(k.name, stamps) != 0) return 1;
  }
  CK(cudaFree(small));
  CK(cudaFree(big));
  CK(cudaFree(writes));
  CK(cudaFree(counter));
  CK(cudaFree(stamps));
  CK(cudaFree(sink));
  CK(cudaStreamDestroy(s));
  return 0;
}
