// Which way of writing rows to a peer GPU keeps NVLink busy with a small SM budget? Both GPUs of a
// pair write into each other at once (like a 2-rank dispatch), with the knobs the high-throughput
// kernels have: threads per block, 16-byte pieces in flight per lane, the store cache hint, a
// system-scope release every N rows per warp (progress publication), and whether every row is
// also written to a local buffer (a rank's rows to itself). Prints GB/s per direction (the slower
// GPU) for each variant. One process, two GPUs with peer access:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o nvlink_store_probe tools/probes/nvlink_store_probe.cu
// Not part of the library; a measuring tool for bench/NOTES.md.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "gpu_pair.cuh"

namespace {

constexpr int kRowBytes = 14336;  // one BF16 row of hidden 7168
constexpr int kPiecesPerRow = kRowBytes / 16;

struct Variant {
  const char* name;
  int threads;
  int unroll;         // pieces in flight per lane (1, 4, 7, 14)
  bool no_allocate;   // st.global.L1::no_allocate instead of a plain store
  int release_rows;   // a st.release.sys by lane 0 every this many rows (0: never)
  bool local_copy;    // also write every row to a local buffer
  int bystander = 0;  // 8 more blocks beside the senders: 1 copy a local buffer, 2 poll with relaxed
                      // loads, 3 poll with acquire loads (the flags the peer's senders release)
};

struct Bystander {
  int mode;
  const int4* src;  // mode 1: local rows to copy
  int4* dst;
  const unsigned long long* flags;  // modes 2, 3: flags the peer releases into this GPU
  unsigned* senders_done;           // blocks of the senders that finished (pollers stop)
  int sender_blocks;
};

// Work beside the senders, as a dispatch's receivers do: copying rows out of local memory, or
// polling the progress flags the peer writes.
__device__ void bystand(const Bystander& b, int rows) {
  const int lane = threadIdx.x % 32;
  const int warp = ((blockIdx.x - b.sender_blocks) * blockDim.x + threadIdx.x) / 32;
  const int warps = (gridDim.x - b.sender_blocks) * blockDim.x / 32;
  if (b.mode == 1) {
    // Copy rows (8 pieces in flight per lane) for as long as the senders run, so the kernel's time
    // stays the senders' time.
    for (int r = warp;; r = (r + warps) % rows) {
      if (*reinterpret_cast<volatile unsigned*>(b.senders_done) >= static_cast<unsigned>(b.sender_blocks))
        return;
      const int4* s = b.src + static_cast<size_t>(r) * kPiecesPerRow;
      int4* d = b.dst + static_cast<size_t>(r) * kPiecesPerRow;
      for (int base = 0; base < kPiecesPerRow; base += 32 * 8) warp_copy_256(s, d, base, kPiecesPerRow);
    }
  }
  unsigned long long sink = 0;
  while (*reinterpret_cast<volatile unsigned*>(b.senders_done) < static_cast<unsigned>(b.sender_blocks)) {
    if (lane == 0) {
      unsigned long long v;
      const unsigned long long* f = b.flags + (warp * 37) % 4096;
      if (b.mode == 2)
        asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(f) : "memory");
      else
        asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(f) : "memory");
      sink += v;
    }
    __nanosleep(256);
  }
  if (sink == 42) b.dst[0] = make_int4(1, 2, 3, 4);  // keeps the loads
}

__device__ __forceinline__ void store(int4* p, const int4& v, bool no_allocate) {
  if (no_allocate)
    asm volatile("st.global.L1::no_allocate.v4.s32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y),
                 "r"(v.z), "r"(v.w)
                 : "memory");
  else
    *p = v;
}

// Each warp copies whole rows (row r = warp id + k * total warps), like a dispatch sender warp.
template <int kUnroll, int kThreads>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(const int4* src, int4* remote, int4* local, unsigned long long* flag, int rows,
                bool no_allocate, int release_rows, bool local_copy, Bystander by) {
  if (by.mode != 0 && static_cast<int>(blockIdx.x) >= by.sender_blocks) {
    bystand(by, rows);
    return;
  }
  const int lane = threadIdx.x % 32;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  // Only the sender blocks share the rows (bystander blocks come after them).
  const int sender_blocks = by.mode != 0 ? by.sender_blocks : static_cast<int>(gridDim.x);
  const int warps = sender_blocks * blockDim.x / 32;
  int done = 0;
  for (int r = warp; r < rows; r += warps) {
    const int4* s = src + static_cast<size_t>(r) * kPiecesPerRow;
    int4* d = remote + static_cast<size_t>(r) * kPiecesPerRow;
    int4* l = local + static_cast<size_t>(r) * kPiecesPerRow;
    for (int base = 0; base < kPiecesPerRow; base += 32 * kUnroll) {
      int4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u * 32 + lane;
        if (i < kPiecesPerRow)
          asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
                       : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                       : "l"(s + i));
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u * 32 + lane;
        if (i < kPiecesPerRow) {
          store(d + i, v[u], no_allocate);
          if (local_copy) store(l + i, v[u], no_allocate);
        }
      }
    }
    if (release_rows > 0 && ++done % release_rows == 0) {
      __syncwarp();
      if (lane == 0)
        asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(flag + warp % 4096), "l"(1ull * done)
                     : "memory");
    }
  }
  if (by.mode != 0) {
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(by.senders_done, 1u);
  }
}

constexpr int kBystanderBlocks = 8;

template <int kUnroll, int kThreads>
cudaError_t launch_one(const Variant& v, int blocks, const int4* src, int4* remote, int4* local,
                       unsigned long long* flag, int rows, const Bystander& by, cudaStream_t stream) {
  if (v.bystander != 0) {
    cudaError_t e = cudaMemsetAsync(by.senders_done, 0, sizeof(unsigned), stream);
    if (e != cudaSuccess) return e;
  }
  const int grid = blocks + (v.bystander != 0 ? kBystanderBlocks : 0);
  rows_kernel<kUnroll, kThreads><<<grid, kThreads, 0, stream>>>(src, remote, local, flag, rows, v.no_allocate,
                                                                v.release_rows, v.local_copy, by);
  return cudaGetLastError();
}

// `flag`: the peer's progress flags (the senders release into them).
cudaError_t launch(const Variant& v, int blocks, const int4* src, int4* remote, int4* local,
                   unsigned long long* flag, int rows, Bystander by, cudaStream_t stream) {
  by.mode = v.bystander;
  by.sender_blocks = blocks;
  if (v.threads == 1024) {
    if (v.unroll == 4) return launch_one<4, 1024>(v, blocks, src, remote, local, flag, rows, by, stream);
    return launch_one<7, 1024>(v, blocks, src, remote, local, flag, rows, by, stream);
  }
  if (v.unroll == 4) return launch_one<4, 512>(v, blocks, src, remote, local, flag, rows, by, stream);
  if (v.unroll == 7) return launch_one<7, 512>(v, blocks, src, remote, local, flag, rows, by, stream);
  return launch_one<14, 512>(v, blocks, src, remote, local, flag, rows, by, stream);
}

}  // namespace

int main() {
  int ndev = 0;
  CK(cudaGetDeviceCount(&ndev));
  if (ndev < 2) {
    std::printf("need 2 GPUs\n");
    return 0;
  }
  const int rows = 4096;  // ~58.7 MB per direction, as ht-dsv3's remote rows
  const size_t bytes = static_cast<size_t>(rows) * kRowBytes;
  int4 *src[2], *dst[2], *loc[2];
  unsigned long long* flag[2];
  int4 *copy_src[2], *copy_dst[2];
  unsigned* senders_done[2];
  cudaStream_t st[2];
  cudaEvent_t e0[2], e1[2];
  CK(open_pair(st, e0, e1));
  for (int d = 0; d < 2; ++d) {
    CK(cudaSetDevice(d));
    CK(cudaMalloc(&src[d], bytes));
    CK(cudaMalloc(&dst[d], bytes));
    CK(cudaMalloc(&loc[d], bytes));
    CK(cudaMalloc(&flag[d], 8 * 4096));
    CK(cudaMemset(src[d], d + 1, bytes));
    CK(cudaMemset(flag[d], 0, 8 * 4096));
    CK(cudaMalloc(&copy_src[d], bytes));
    CK(cudaMalloc(&copy_dst[d], bytes));
    CK(cudaMemset(copy_src[d], 7, bytes));
    CK(cudaMalloc(&senders_done[d], sizeof(unsigned)));
  }
  const Variant variants[] = {
      {"512t-u14-na-rel4", 512, 14, true, 4, true},  // today's dispatch sender shape
      {"512t-u14-na-rel4-nolocal", 512, 14, true, 4, false},
      {"512t-u14-na-norel", 512, 14, true, 0, true},
      {"512t-u14-plain-rel4", 512, 14, false, 4, true},
      {"1024t-u7-na-rel4", 1024, 7, true, 4, true},
      {"1024t-u4-plain-norel-nolocal", 1024, 4, false, 0, false},  // the copy kernel of BENCH.md
      {"1024t-u7-plain-rel4", 1024, 7, false, 4, true},
      {"512t-u4-na-rel4", 512, 4, true, 4, true},
      {"1024t-u4-na-rel4-nolocal", 1024, 4, true, 4, false},
      {"512t-u7-plain-norel-nolocal", 512, 7, false, 0, false},
      // today's sender shape beside 8 blocks doing what receivers do
      {"512t-u14-na-rel4+copy8", 512, 14, true, 4, true, 1},
      {"512t-u14-na-rel4+pollrelaxed8", 512, 14, true, 4, true, 2},
      {"512t-u14-na-rel4+pollacquire8", 512, 14, true, 4, true, 3},
  };
  std::printf("variant sender_sms GBps_per_direction\n");
  for (const Variant& v : variants) {
    for (int sms : {8, 16, 24}) {
      float best = 0;
      CK(time_pair(
          st, e0, e1, bytes, 4,
          [&](int d, cudaStream_t s) {
            const Bystander by{0, copy_src[d], copy_dst[d], flag[d], senders_done[d], 0};
            return launch(v, sms, src[d], dst[1 - d], loc[d], flag[1 - d], rows, by, s);
          },
          &best));
      std::printf("%s %d %.1f\n", v.name, sms, best);
    }
  }
  return 0;
}
