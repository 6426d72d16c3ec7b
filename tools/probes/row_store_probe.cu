// How long one warp takes to issue the low-latency receive's row stores (bench/NOTES.md 11.87: at
// one token the dispatch's warp has its item's piece in registers ~1.6 us before its 8 row stores
// are all issued, for 57 KB in all). A grid of 132 blocks of 512 threads (the low-latency kernels'
// shape) is launched back to back; warp 0 of every block loads a 16-byte piece per lane from an
// L2-resident buffer, stamps %globaltimer once it is in registers, issues 8 row stores of it
// (st.global.L1::no_allocate.v4, 512 bytes a row, as store_received does) and stamps again (a warp
// issues in order, so the second stamp follows the last store's issue). The cases differ in where
// the 8 rows lie in a 512 MiB buffer (the size of a low-latency Buffer's two recv_x halves):
//   one page        8 adjacent rows of 7168 bytes (56 KiB), the same every launch
//   experts         one row in each of 8 experts' regions 896 KiB apart (capacity 128 rows of
//                   7168 bytes: the receive at one token), the same every launch
//   far             8 rows 64 MiB apart, the same every launch
//   new pages       8 rows 2 MiB apart in pages no recent launch wrote (launch r moves 16 MiB on)
//   experts, warm   as experts, with lanes 0-7 each loading a line of their row's page at entry
//                   (their translation asked for before the piece is)
//   token, 1 block  one token as the direct dispatch receives it at one rank: warps 0-13 of block 0
//                   (its 14 parts) each store their 512-byte part of the same 8 rows (8 experts'
//                   regions), 57 KB from one SM; the other blocks idle
//   token, 14 SMs   the same 14 parts by warp 0 of blocks 0-13, one part per SM
// Prints, per case, the medians over launches of the median and the last block's time from the
// piece in registers to the stores issued, and of the piece's own load.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/ptx.cuh"  // globaltimer, ld_v4, st_na_v4
#include "gpu_pair.cuh"  // CK, median, open_one
#include "timer_after.cuh"

namespace {

constexpr int kBlocks = 132, kThreads = 512, kReps = 200, kWarmup = 20, kRows = 8;
constexpr std::size_t kRowBytes = 7168;
constexpr std::size_t kExpertBytes = 128 * kRowBytes;
constexpr std::size_t kBigBytes = std::size_t{512} << 20;
constexpr std::size_t kPage = std::size_t{2} << 20;

enum class Case { kOnePage, kExperts, kFar, kNewPages, kExpertsWarm, kTokenBlock, kTokenSpread };
constexpr int kParts = 14;               // a 7168-channel token's 512-channel parts
constexpr std::size_t kPartBytes = 512;  // one part of an FP8 row

struct Stamp {
  std::uint64_t entry, loaded, stored;
};

// Byte offset of row k of block b in launch r.
__device__ __forceinline__ std::size_t row_offset(Case c, int r, int b, int k) {
  const std::size_t mine = static_cast<std::size_t>(b) * kRowBytes;
  switch (c) {
    case Case::kOnePage:
      return (static_cast<std::size_t>(b) * kRows + k) * kRowBytes;
    case Case::kFar:
      return static_cast<std::size_t>(k) * (std::size_t{64} << 20) + mine;
    case Case::kNewPages:  // 8 pages of 2 MiB per launch, 16 MiB per launch, wrapping at 448 MiB
      return ((static_cast<std::size_t>(r) * kRows + k) * kPage) % (std::size_t{448} << 20) + mine;
    default:
      return static_cast<std::size_t>(k) * kExpertBytes + mine;
  }
}

__global__ void __launch_bounds__(kThreads, 1)
    probe_kernel(Case c, int r, const int4* pieces, char* rows, Stamp* stamps, int* sink) {
  const std::uint64_t entry = epcomm::ptx::globaltimer();
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  int b = static_cast<int>(blockIdx.x);
  // Which part of the token this warp stores (token cases; -1: none), and where it stamps.
  int part = -1, slot = b;
  if (c == Case::kTokenBlock && b == 0 && warp < kParts) part = slot = warp;
  if (c == Case::kTokenSpread && b < kParts && warp == 0) part = b;
  if (c == Case::kTokenBlock || c == Case::kTokenSpread) {
    if (part < 0) return;
    b = 0;  // the rows are the token's; the part picks its bytes within each
  } else if (warp != 0) {
    return;
  }
  const std::size_t column = part < 0 ? 0 : part * kPartBytes;  // where in each row this warp stores
  if (c == Case::kExpertsWarm && lane < kRows) {
    const int4 w = epcomm::ptx::ld_v4(reinterpret_cast<const int4*>(rows + row_offset(c, r, b, lane)));
    if ((w.x ^ w.w) == 0x7ffffffe) *sink = lane;  // never: keeps the load
  }
  const int4 v = pieces[b * 32 + lane];
  const std::uint64_t loaded = timer_after(v, sink);
#pragma unroll
  for (int k = 0; k < kRows; ++k)
    epcomm::ptx::st_na_v4(reinterpret_cast<int4*>(rows + row_offset(c, r, b, k) + column) + lane, v);
  const std::uint64_t stored = epcomm::ptx::globaltimer();
  if (lane == 0) stamps[slot] = {entry, loaded, stored};
}

// One line: the medians over launches (past the warm-up) of the median and the last block's store
// time, and of the median block's load time (0; 1 after a failed copy). `workers`: the stamping
// warps (stamps 0 to workers - 1 of each launch).
int report(const char* name, const Stamp* stamps, int workers) {
  std::vector<Stamp> got(static_cast<std::size_t>(kReps) * kBlocks);
  CK(cudaMemcpy(got.data(), stamps, got.size() * sizeof(Stamp), cudaMemcpyDeviceToHost));
  std::vector<double> med, last, load;
  for (int r = kWarmup; r < kReps; ++r) {
    std::vector<double> store_us, load_us;
    for (int b = 0; b < workers; ++b) {
      const Stamp& x = got[static_cast<std::size_t>(r) * kBlocks + b];
      store_us.push_back(static_cast<double>(x.stored - x.loaded) / 1000.0);
      load_us.push_back(static_cast<double>(x.loaded - x.entry) / 1000.0);
    }
    med.push_back(median(store_us));
    last.push_back(*std::max_element(store_us.begin(), store_us.end()));
    load.push_back(median(load_us));
  }
  std::printf("%-16s %12.2f %12.2f %12.2f\n", name, median(med), median(last), median(load));
  return 0;
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  cudaStream_t s;
  CK(open_one(prop, s));
  std::printf("# row_store_probe on %s: %d blocks x %d threads (warp 0 works), medians of %d launches (us)\n",
              prop.name, kBlocks, kThreads, kReps - kWarmup);
  int4* pieces = nullptr;
  char* rows = nullptr;
  Stamp* stamps = nullptr;
  int* sink = nullptr;
  CK(cudaMalloc(&pieces, kBlocks * 32 * sizeof(int4)));
  CK(cudaMalloc(&rows, kBigBytes));
  CK(cudaMalloc(&stamps, kReps * kBlocks * sizeof(Stamp)));
  CK(cudaMalloc(&sink, sizeof(int)));
  CK(cudaMemset(pieces, 1, kBlocks * 32 * sizeof(int4)));
  CK(cudaMemset(rows, 0, kBigBytes));
  std::printf("%-16s %12s %12s %12s\n", "case", "store_med", "store_last", "load_med");
  const struct {
    const char* name;
    Case c;
  } cases[] = {{"one page", Case::kOnePage},
               {"experts", Case::kExperts},
               {"far", Case::kFar},
               {"new pages", Case::kNewPages},
               {"experts, warm", Case::kExpertsWarm},
               {"token, 1 block", Case::kTokenBlock},
               {"token, 14 SMs", Case::kTokenSpread}};
  for (const auto& k : cases) {
    for (int r = 0; r < kReps; ++r) {
      probe_kernel<<<kBlocks, kThreads, 0, s>>>(k.c, r, pieces, rows, stamps + static_cast<std::size_t>(r) * kBlocks,
                                                sink);
      CK(cudaGetLastError());
    }
    CK(cudaStreamSynchronize(s));
    const bool token = k.c == Case::kTokenBlock || k.c == Case::kTokenSpread;
    if (report(k.name, stamps, token ? kParts : kBlocks) != 0) return 1;
  }
  CK(cudaFree(pieces));
  CK(cudaFree(rows));
  CK(cudaFree(stamps));
  CK(cudaFree(sink));
  return 0;
}
