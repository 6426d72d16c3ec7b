// How fast can a few SMs copy rows within one GPU? Every SM-side step of the high-throughput
// dispatch that is not a store to a peer is such a copy: the own rows from x to the outputs, the
// copy-engine dispatch's packs into staging and the copy-out of arrived rows. Copies 4096 rows of
// 14336 bytes (ht-dsv3's BF16 rows, 58.7 MB, more than L2) on 8 to 32 SMs three ways:
//   warp:  each warp copies whole rows with 16-byte loads and stores, `pieces` in flight per lane
//          (the dispatch kernel's pattern: 512 threads, 14 pieces, no-allocate hints);
//   bulk:  per block, `issuers` threads each run a ring of `slots` shared-memory slots of
//          `row / parts` bytes: bulk loads (cp.async.bulk, completion on an mbarrier) and bulk
//          stores (bulk groups), half of a ring's slots loading while the other half store;
//   copy engine: one cudaMemcpyAsync, no SM.
// Then the copy engine beside SM work on another stream (the copy-engine dispatch's situation: packs
// and own rows while the copy stream copies): each side's start and duration, with the warp copy's
// loads non-coherent, plain or coherent without L1 allocation, and beside a kernel that only sleeps;
// and who waits for whom with copies within the GPU, from the host and (two GPUs) to a peer.
// Every copy is checked against its source (the destination is poisoned first). Prints GB/s of
// bytes copied. One GPU:
//   nvcc -O3 -std=c++17 -arch=sm_90a -Isrc -o local_copy_probe tools/probes/local_copy_probe.cu
// Not part of the library; a measuring tool for bench/NOTES.md.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "gpu_pair.cuh"     // CK
#include "core/ptx.cuh"  // the library's load and store wrappers

namespace {

constexpr int kRows = 4096;
constexpr int kRowBytes = 14336;
constexpr std::size_t kBytes = static_cast<std::size_t>(kRows) * kRowBytes;

// ---- warp copies ----
// The non-coherent load the library used for inputs until this probe (it now uses ptx::ld_na_v4).
__device__ __forceinline__ int4 ld_nc_na_v4(const int4* p) {
  int4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// How warp_rows loads: non-coherent without L1 allocation (the dispatch kernel's x until this
// probe), plain, or coherent without L1 allocation.
enum class Load { kNcNa, kPlain, kNa };

template <int kPieces, Load kLoad = Load::kNcNa>
__global__ void warp_rows(const int4* src, int4* dst) {
  constexpr int kRowPieces = kRowBytes / 16;
  const int lane = threadIdx.x % 32;
  const int warps = gridDim.x * (blockDim.x / 32);
  for (int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < kRows; row += warps) {
    const int4* s = src + static_cast<std::size_t>(row) * kRowPieces;
    int4* d = dst + static_cast<std::size_t>(row) * kRowPieces;
    for (int base = 0; base < kRowPieces; base += 32 * kPieces) {
      int4 v[kPieces];
#pragma unroll
      for (int u = 0; u < kPieces; ++u)
        if (base + u * 32 + lane < kRowPieces)
          v[u] = kLoad == Load::kPlain ? epcomm::ptx::ld_v4(s + base + u * 32 + lane)
                 : kLoad == Load::kNa  ? epcomm::ptx::ld_na_v4(s + base + u * 32 + lane)
                                       : ld_nc_na_v4(s + base + u * 32 + lane);
#pragma unroll
      for (int u = 0; u < kPieces; ++u)
        if (base + u * 32 + lane < kRowPieces) epcomm::ptx::st_na_v4(d + base + u * 32 + lane, v[u]);
    }
  }
}

// ---- bulk copies (the asynchronous proxy) ----
__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(std::uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(bar)));
}
__device__ __forceinline__ void bulk_load(void* smem, const void* gmem, std::uint32_t bytes,
                                          std::uint64_t* bar) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          smem_addr(smem)),
      "l"(gmem), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void mbar_wait(std::uint64_t* bar, std::uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void bulk_store(void* gmem, const void* smem, std::uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(gmem),
               "r"(smem_addr(smem)), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}
template <int kInFlight>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kInFlight) : "memory");
}

// Issuer i of block b takes items (row pieces) i + b * issuers, stepping by all issuers of the
// grid. Its ring: `slots` slots; item j loads into slot j % slots; once item j's store is issued,
// the store issued kLag items earlier has read its slot, which then loads item (j - kLag) + slots.
template <int kLag>
__global__ void bulk_rows(const char* src, char* dst, int issuers, int slots, int parts) {
  extern __shared__ __align__(128) char smem[];
  const int slot_bytes = kRowBytes / parts;
  const int issuer = threadIdx.x / 32;
  auto* bars = reinterpret_cast<std::uint64_t*>(smem);
  char* ring = smem + 1024 + static_cast<std::size_t>(issuer) * slots * slot_bytes;
  std::uint64_t* my_bars = bars + issuer * slots;
  if (threadIdx.x % 32 == 0)
    for (int s = 0; s < slots; ++s) mbar_init(my_bars + s);
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  __syncthreads();
  if (threadIdx.x % 32 != 0) return;
  const int first = blockIdx.x * issuers + issuer, step = gridDim.x * issuers;
  const int items = kRows * parts;
  const int mine = first < items ? (items - first + step - 1) / step : 0;
  auto offset = [&](int j) { return static_cast<std::size_t>(first + j * step) * slot_bytes; };
  for (int j = 0; j < slots && j < mine; ++j)
    bulk_load(ring + j * slot_bytes, src + offset(j), slot_bytes, my_bars + j);
  for (int j = 0; j < mine; ++j) {
    const int s = j % slots;
    mbar_wait(my_bars + s, static_cast<std::uint32_t>((j / slots) & 1));
    bulk_store(dst + offset(j), ring + s * slot_bytes, slot_bytes);
    const int done = j - kLag;  // its store has read its slot once kLag groups at most are pending
    if (done >= 0 && done + slots < mine) {
      bulk_wait_read<kLag>();
      const int ds = done % slots;
      bulk_load(ring + ds * slot_bytes, src + offset(done + slots), slot_bytes, my_bars + ds);
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

// A block of 1024 threads with this much shared memory fills an SM: nothing else is resident.
constexpr int kFullSmemBytes = 200 * 1024;

__global__ void sleep_kernel(unsigned ns) {
  const std::uint64_t until = epcomm::ptx::globaltimer() + ns;
  while (epcomm::ptx::globaltimer() < until) __nanosleep(1000);
}

__global__ void count_mismatches(const int4* a, const int4* b, std::size_t n, unsigned long long* bad) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const int4 x = a[i], y = b[i];
    if (x.x != y.x || x.y != y.y || x.z != y.z || x.w != y.w) atomicAdd(bad, 1ull);
  }
}

__global__ void fill_random(std::uint32_t* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u + 12345u;
    h ^= h >> 15;
    p[i] = h * 2246822519u;
  }
}

struct Run {
  cudaStream_t stream;
  cudaEvent_t e0, e1;
  char *src, *dst;
  unsigned long long* bad;
};

// Best GB/s over 5 timed launches after one warm-up; -1 when the copy was wrong.
template <typename Launch>
int measure(Run& r, Launch launch, double* gbps) {
  CK(cudaMemsetAsync(r.dst, 0xA5, kBytes, r.stream));
  float best = 1e30f;
  for (int rep = 0; rep < 6; ++rep) {
    CK(cudaEventRecord(r.e0, r.stream));
    CK(launch());
    CK(cudaEventRecord(r.e1, r.stream));
    CK(cudaEventSynchronize(r.e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, r.e0, r.e1));
    if (rep > 0 && ms < best) best = ms;
  }
  CK(cudaMemsetAsync(r.bad, 0, sizeof(unsigned long long), r.stream));
  count_mismatches<<<264, 512, 0, r.stream>>>(reinterpret_cast<const int4*>(r.src),
                                              reinterpret_cast<const int4*>(r.dst), kBytes / 16, r.bad);
  CK(cudaGetLastError());
  unsigned long long bad = 0;
  CK(cudaMemcpyAsync(&bad, r.bad, sizeof bad, cudaMemcpyDeviceToHost, r.stream));
  CK(cudaStreamSynchronize(r.stream));
  *gbps = bad != 0 ? -1.0 : static_cast<double>(kBytes) / (best * 1e-3) / 1e9;
  return 0;
}

}  // namespace

int main() {
  Run r{};
  CK(cudaSetDevice(0));
  CK(cudaStreamCreate(&r.stream));
  CK(cudaEventCreate(&r.e0));
  CK(cudaEventCreate(&r.e1));
  CK(cudaMalloc(&r.src, kBytes));
  CK(cudaMalloc(&r.dst, kBytes));
  CK(cudaMalloc(&r.bad, sizeof(unsigned long long)));
  fill_random<<<264, 512, 0, r.stream>>>(reinterpret_cast<std::uint32_t*>(r.src), kBytes / 4);
  CK(cudaGetLastError());
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; %d rows of %d bytes (%.1f MB); GB/s of bytes copied, best of 5; -1 = wrong\n",
              prop.name, prop.multiProcessorCount, kRows, kRowBytes, kBytes / 1e6);
  double g = 0;
  if (measure(
          r, [&] { return cudaMemcpyAsync(r.dst, r.src, kBytes, cudaMemcpyDeviceToDevice, r.stream); }, &g))
    return 1;
  std::printf("copy engine (cudaMemcpyAsync): %.0f\n", g);

  const int sm_counts[] = {8, 16, 24, 32};
  std::printf("%-44s", "variant \\ SMs");
  for (int sms : sm_counts) std::printf("%8d", sms);
  std::printf("\n");
  auto row = [&](const char* name, auto launch_on) -> int {
    std::printf("%-44s", name);
    for (int sms : sm_counts) {
      if (measure(
              r, [&] { return launch_on(sms); }, &g))
        return 1;
      std::printf("%8.0f", g);
    }
    std::printf("\n");
    return 0;
  };
  auto warp_row = [&](const char* name, auto kernel, int threads) {
    return row(name, [&, kernel, threads](int sms) {
      kernel<<<sms, threads, 0, r.stream>>>(reinterpret_cast<const int4*>(r.src),
                                            reinterpret_cast<int4*>(r.dst));
      return cudaGetLastError();
    });
  };
  if (warp_row("warp: 512 threads, 14 pieces (dispatch today)", warp_rows<14>, 512)) return 1;
  if (warp_row("warp: 512 threads, 14 pieces, plain loads", warp_rows<14, Load::kPlain>, 512)) return 1;
  if (warp_row("warp: 512 threads, 14 pieces, coherent no-allocate", warp_rows<14, Load::kNa>, 512)) return 1;
  if (warp_row("warp: 1024 threads, 7 pieces", warp_rows<7>, 1024)) return 1;
  if (warp_row("warp: 1024 threads, 4 pieces", warp_rows<4>, 1024)) return 1;
  if (warp_row("warp: 256 threads, 14 pieces", warp_rows<14>, 256)) return 1;

  struct Bulk {
    int issuers, slots, parts;
  };
  const Bulk bulks[] = {{1, 4, 1},  {1, 8, 1}, {1, 12, 1}, {2, 6, 1},  {4, 3, 1}, {1, 8, 2},
                        {1, 16, 2}, {4, 6, 2}, {8, 4, 2},  {16, 2, 2}, {4, 8, 4}, {16, 4, 4}};
  for (const Bulk& b : bulks) {
    const std::size_t smem = 1024 + static_cast<std::size_t>(b.issuers) * b.slots * (kRowBytes / b.parts);
    // Half of the ring loads while the other half stores.
    const int lag = b.slots / 2;
    auto kernel = lag >= 8   ? bulk_rows<8>
                  : lag >= 6 ? bulk_rows<6>
                  : lag >= 4 ? bulk_rows<4>
                  : lag >= 3 ? bulk_rows<3>
                  : lag >= 2 ? bulk_rows<2>
                             : bulk_rows<1>;
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    char name[64];
    std::snprintf(name, sizeof name, "bulk: %d issuers x %d slots of %d B", b.issuers, b.slots,
                  kRowBytes / b.parts);
    if (row(name, [&](int sms) {
          kernel<<<sms, b.issuers * 32, smem, r.stream>>>(r.src, r.dst, b.issuers, b.slots, b.parts);
          return cudaGetLastError();
        }))
      return 1;
  }

  // The copy engine beside SM work (another pair of buffers). Per case, each of 6 runs: the copy's
  // and the kernel's start and duration after the fork.
  Run side = r;
  CK(cudaStreamCreateWithFlags(&side.stream, cudaStreamNonBlocking));
  CK(cudaMalloc(&side.src, kBytes));
  CK(cudaMalloc(&side.dst, kBytes));
  CK(cudaMemcpyAsync(side.src, r.src, kBytes, cudaMemcpyDeviceToDevice, r.stream));
  cudaEvent_t fork, join, ce0, ce1, k0, k1;
  CK(cudaEventCreate(&fork));
  CK(cudaEventCreate(&join));
  CK(cudaEventCreate(&ce0));
  CK(cudaEventCreate(&ce1));
  CK(cudaEventCreate(&k0));
  CK(cudaEventCreate(&k1));
  // The main stream joins the side stream; then prints " | c@start+duration k@start+duration" of the
  // copy and the kernel after the fork (us).
  auto join_and_print = [&]() -> cudaError_t {
    cudaError_t e = cudaEventRecord(join, side.stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(r.stream, join, 0);
    if (e == cudaSuccess) e = cudaStreamSynchronize(r.stream);
    float t[4] = {};
    if (e == cudaSuccess) e = cudaEventElapsedTime(&t[0], fork, ce0);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&t[1], fork, ce1);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&t[2], fork, k0);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&t[3], fork, k1);
    if (e == cudaSuccess)
      std::printf(" | c@%.0f+%.0f k@%.0f+%.0f", 1e3f * t[0], 1e3f * (t[1] - t[0]), 1e3f * t[2],
                  1e3f * (t[3] - t[2]));
    return e;
  };
  enum Kernel { kNone, kWarpNc, kWarpPlain, kWarpNa, kSleep };
  auto beside = [&](const char* name, std::size_t copy_bytes, unsigned copy_delay_ns, Kernel kernel, int sms,
                    bool batched) -> int {
    std::printf("%-58s", name);
    for (int rep = 0; rep < 6; ++rep) {
      CK(cudaEventRecord(fork, r.stream));
      CK(cudaStreamWaitEvent(side.stream, fork, 0));
      if (copy_delay_ns > 0) sleep_kernel<<<1, 32, 0, side.stream>>>(copy_delay_ns);
      CK(cudaEventRecord(ce0, side.stream));
      if (copy_bytes > 0 && !batched)
        CK(cudaMemcpyAsync(side.dst, side.src, copy_bytes, cudaMemcpyDeviceToDevice, side.stream));
      if (copy_bytes > 0 && batched) {
        cudaMemcpyAttributes attrs{};
        attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
        attrs.flags = cudaMemcpyFlagPreferOverlapWithCompute;
        void* dsts[1] = {side.dst};
        const void* srcs[1] = {side.src};
        std::size_t sizes[1] = {copy_bytes}, first = 0;
        CK(cudaMemcpyBatchAsync(dsts, srcs, sizes, 1, &attrs, &first, 1, side.stream));
      }
      CK(cudaEventRecord(ce1, side.stream));
      CK(cudaEventRecord(k0, r.stream));
      const auto* in = reinterpret_cast<const int4*>(r.src);
      auto* out = reinterpret_cast<int4*>(r.dst);
      if (kernel == kWarpNc) warp_rows<14><<<sms, 512, 0, r.stream>>>(in, out);
      if (kernel == kWarpPlain) warp_rows<14, Load::kPlain><<<sms, 512, 0, r.stream>>>(in, out);
      if (kernel == kWarpNa) warp_rows<14, Load::kNa><<<sms, 512, 0, r.stream>>>(in, out);
      if (kernel == kSleep) sleep_kernel<<<sms, 512, 0, r.stream>>>(100000);
      CK(cudaGetLastError());
      CK(cudaEventRecord(k1, r.stream));
      CK(join_and_print());
    }
    std::printf("\n");
    return 0;
  };
  std::printf(
      "copy engine beside SM work, 6 runs each: c@start+duration of the copy, k@... of the kernel (us)\n");
  const std::size_t quarter = kBytes / 4;
  if (beside("warp copy 24 SMs alone", 0, 0, kWarpNc, 24, false)) return 1;
  if (beside("copy engine alone", kBytes, 0, kNone, 0, false)) return 1;
  if (beside("copy engine + warp copy 24 SMs", kBytes, 0, kWarpNc, 24, false)) return 1;
  if (beside("copy engine + warp copy 24 SMs, plain loads", kBytes, 0, kWarpPlain, 24, false)) return 1;
  if (beside("copy engine + warp copy 24 SMs, coherent no-allocate", kBytes, 0, kWarpNa, 24, false)) return 1;
  if (beside("copy engine + warp copy 8 SMs", kBytes, 0, kWarpNc, 8, false)) return 1;
  if (beside("copy engine + warp copy 8 SMs, coherent no-allocate", kBytes, 0, kWarpNa, 8, false)) return 1;
  if (beside("copy engine (batch, hint) + warp copy 24 SMs", kBytes, 0, kWarpNc, 24, true)) return 1;
  if (beside("copy engine 1/4 + warp copy 24 SMs", quarter, 0, kWarpNc, 24, false)) return 1;
  if (beside("copy engine 20 us late + warp copy 24 SMs", kBytes, 20000, kWarpNc, 24, false)) return 1;
  if (beside("copy engine 20 us late + warp copy 24 SMs, coh. no-alloc.", kBytes, 20000, kWarpNa, 24, false))
    return 1;
  if (beside("copy engine + warp copy 64 SMs", kBytes, 0, kWarpNc, 64, false)) return 1;
  if (beside("copy engine + sleeping kernel 24 SMs", kBytes, 0, kSleep, 24, false)) return 1;
  if (beside("copy engine + sleeping kernel 132 SMs", kBytes, 0, kSleep, 132, false)) return 1;
  if (beside("warp copy 24 SMs alone, again", 0, 0, kWarpNc, 24, false)) return 1;

  // Who waits for whom, for three kinds of copy: device to device (58.7 MB), from pinned host memory
  // (8 MB) and, with a second GPU, to its memory over NVLink (58.7 MB). (1) The copy is queued, then
  // a kernel that sleeps 100 us on 24 SMs: if the kernel's blocks wait for the copy, it spans 100 us
  // plus the copy's rest. (2) A kernel that sleeps 100 us on every SM, alone on each (1024 threads,
  // 200 KiB of shared memory), then (30 us later by the host's clock) the copy: a copy that needs an
  // SM starts only when the kernel ends. (3) The copy beside the warp copy on 24 SMs, non-coherent or
  // coherent loads.
  void* host = nullptr;
  const std::size_t host_bytes = 8u << 20;
  CK(cudaMallocHost(&host, host_bytes));
  void* peer = nullptr;
  int devices = 0;
  CK(cudaGetDeviceCount(&devices));
  if (devices > 1) {
    CK(cudaSetDevice(1));
    CK(cudaMalloc(&peer, kBytes));
    CK(cudaDeviceEnablePeerAccess(0, 0));
    CK(cudaSetDevice(0));
    CK(cudaDeviceEnablePeerAccess(1, 0));
  }
  CK(cudaFuncSetAttribute(sleep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kFullSmemBytes));
  std::printf("who waits for whom, 3 runs each: c@start+duration of the copy, k@... of the kernel (us)\n");
  enum Case { kThenSleep24, kEverySmThenCopy, kBesideNc, kBesideCoherent };
  const char* const kinds[] = {"device copy", "copy from host", "peer copy"};
  const char* const cases[] = {", then sleeping kernel 24 SMs", " after every SM sleeping",
                               " + warp copy 24 SMs", " + warp copy 24 SMs, coherent"};
  for (int kind = 0; kind < (peer != nullptr ? 3 : 2); ++kind) {
    for (int c = kThenSleep24; c <= kBesideCoherent; ++c) {
      char name[96];
      std::snprintf(name, sizeof name, "%s%s", kinds[kind], cases[c]);
      std::printf("%-58s", name);
      for (int rep = 0; rep < 3; ++rep) {
        CK(cudaEventRecord(fork, r.stream));
        CK(cudaStreamWaitEvent(side.stream, fork, 0));
        auto copy = [&]() -> cudaError_t {
          cudaError_t e = cudaEventRecord(ce0, side.stream);
          if (e == cudaSuccess)
            e = kind == 1 ? cudaMemcpyAsync(side.dst, host, host_bytes, cudaMemcpyHostToDevice, side.stream)
                : kind == 2
                    ? cudaMemcpyPeerAsync(peer, 1, side.src, 0, kBytes, side.stream)
                    : cudaMemcpyAsync(side.dst, side.src, kBytes, cudaMemcpyDeviceToDevice, side.stream);
          if (e == cudaSuccess) e = cudaEventRecord(ce1, side.stream);
          return e;
        };
        if (c != kEverySmThenCopy) CK(copy());
        CK(cudaEventRecord(k0, r.stream));
        const auto* in = reinterpret_cast<const int4*>(r.src);
        auto* out = reinterpret_cast<int4*>(r.dst);
        if (c == kThenSleep24) sleep_kernel<<<24, 512, 0, r.stream>>>(100000);
        if (c == kEverySmThenCopy)
          sleep_kernel<<<prop.multiProcessorCount, 1024, kFullSmemBytes, r.stream>>>(100000);
        if (c == kBesideNc) warp_rows<14><<<24, 512, 0, r.stream>>>(in, out);
        if (c == kBesideCoherent) warp_rows<14, Load::kNa><<<24, 512, 0, r.stream>>>(in, out);
        CK(cudaGetLastError());
        CK(cudaEventRecord(k1, r.stream));
        if (c == kEverySmThenCopy) {
          // A spin, not a sleep: the host's sleeps last far longer than 30 us.
          const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(30);
          while (std::chrono::steady_clock::now() < until) {
          }
          CK(copy());
        }
        CK(join_and_print());
      }
      std::printf("\n");
    }
  }
  return 0;
}
