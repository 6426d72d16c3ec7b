// Can reads from a peer GPU keep NVLink as busy as stores do, with a small SM budget? This is the
// question behind combine's pull mode (EPCOMM_HT_COMBINE_PULL=1): the owner's reducers read each
// token's remote row from the peer's memory while they sum. Both GPUs of a pair read rows of the
// other at once through shared memory with cp.async (warps of 32 lanes, `stages` chunks of 2 KiB
// in flight per warp, as the reducer does), optionally add a local row and write the BF16 sum to a
// local output (the reducer's whole work). Prints GB/s of remote rows per direction (the slower
// GPU) for each variant. First, on one GPU, what staging the rows locally costs (pull mode's local
// copy): the copy engine (cudaMemcpyAsync) against a copy kernel on 8 to 32 SMs. One process;
// the NVLink part needs two GPUs with peer access:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o nvlink_pull_probe tools/probes/nvlink_pull_probe.cu
// Not part of the library; a measuring tool for bench/NOTES.md.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "gpu_pair.cuh"
#include "core/ptx.cuh"  // the library's own cp.async wrappers, as its reducers use them

namespace {

constexpr int kRowBytes = 14336;  // one BF16 row of hidden 7168
constexpr int kPieces = kRowBytes / 16;
constexpr int kWarps = 16;
constexpr int kChunk = 32 * 4;  // 16-byte pieces per chunk: 2 KiB
constexpr int kMaxStages = 12;

// Chunk k of a warp's work: row (warp + (k / chunks) * warps), chunk k % chunks; the sources of
// a row are the remote row, then (with_local) the local one.
template <int kStages>
__global__ void __launch_bounds__(kWarps * 32, 1)
    pull_kernel(const int4* remote, const int4* local, int4* out, int rows, bool with_local) {
  extern __shared__ int4 stage_mem[];
  const int lane = threadIdx.x % 32, warp_in_block = threadIdx.x / 32;
  const int warp = blockIdx.x * kWarps + warp_in_block, warps = gridDim.x * kWarps;
  int4* stage = stage_mem + warp_in_block * kStages * kChunk;
  constexpr int kChunks = (kPieces + kChunk - 1) / kChunk;
  const int sources = with_local ? 2 : 1;
  const int my_rows = rows > warp ? (rows - warp + warps - 1) / warps : 0;
  const int total = my_rows * kChunks * sources;  // staged chunks of this warp
  auto issue = [&](int k) {
    if (k < total) {
      const int src = k % sources, chunk = (k / sources) % kChunks,
                row = warp + (k / sources / kChunks) * warps;
      const int4* from = (src == 0 ? remote : local) + static_cast<size_t>(row) * kPieces + chunk * kChunk;
      int4* slot = stage + (k % kStages) * kChunk;
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (chunk * kChunk + u * 32 + lane < kPieces)
          epcomm::ptx::cp_async_16(slot + u * 32 + lane, from + u * 32 + lane);
    }
    epcomm::ptx::cp_async_commit();
  };
  for (int k = 0; k < kStages; ++k) issue(k);
  float acc[4][8] = {};
  for (int k = 0; k < total; ++k) {
    epcomm::ptx::cp_async_wait_pending<kStages - 1>();
    const int chunk = (k / sources) % kChunks, row = warp + (k / sources / kChunks) * warps;
    const int4* slot = stage + (k % kStages) * kChunk;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (chunk * kChunk + u * 32 + lane >= kPieces) continue;
      const int4 v = slot[u * 32 + lane];
      const auto* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float2 f = __bfloat1622float2(h[q]);
        acc[u][2 * q] += f.x;
        acc[u][2 * q + 1] += f.y;
      }
    }
    __syncwarp();
    issue(k + kStages);
    if (k % sources != sources - 1) continue;
    int4* o = out + static_cast<size_t>(row) * kPieces + chunk * kChunk;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (chunk * kChunk + u * 32 + lane < kPieces) {
        int4 packed;
        auto* h = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
        for (int q = 0; q < 4; ++q) h[q] = __floats2bfloat162_rn(acc[u][2 * q], acc[u][2 * q + 1]);
        o[u * 32 + lane] = packed;
      }
#pragma unroll
      for (int q = 0; q < 8; ++q) acc[u][q] = 0.0f;
    }
  }
  epcomm::ptx::cp_async_wait_pending<0>();
}

// A plain copy: each warp moves 16-byte pieces, 8 in flight per lane.
__global__ void __launch_bounds__(512) copy_kernel(const int4* src, int4* dst, size_t pieces) {
  const size_t warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const size_t warps = gridDim.x * blockDim.x / 32;
  for (size_t base = warp * 256; base < pieces; base += warps * 256) warp_copy_256(src, dst, base, pieces);
}

// Local staging of `bytes` on the current GPU: prints GB/s of rows copied (read once, written once).
int local_staging(size_t bytes) {
  int4 *a = nullptr, *b = nullptr;
  cudaStream_t st;
  cudaEvent_t e0, e1;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  CK(cudaStreamCreate(&st));
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::printf("local_staging sms GBps_copied\n");
  for (int sms : {0, 8, 16, 24, 32}) {  // 0: the copy engine
    float best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      CK(cudaEventRecord(e0, st));
      if (sms == 0)
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st));
      else
        copy_kernel<<<sms, 512, 0, st>>>(a, b, bytes / 16);
      CK(cudaGetLastError());
      CK(cudaEventRecord(e1, st));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      const float gbps = static_cast<float>(bytes) / (ms * 1e-3f) / 1e9f;
      if (rep > 0 && gbps > best) best = gbps;
    }
    std::printf("%s %d %.1f\n", sms == 0 ? "copy-engine" : "copy-kernel", sms, best);
  }
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 0;
}

struct Variant {
  const char* name;
  int stages;
  bool with_local;
};

template <int kStages>
cudaError_t launch_stages(int blocks, const int4* remote, const int4* local, int4* out, int rows,
                          bool with_local, cudaStream_t stream) {
  const int smem = static_cast<int>(sizeof(int4)) * kWarps * kStages * kChunk;
  cudaError_t e =
      cudaFuncSetAttribute(pull_kernel<kStages>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  pull_kernel<kStages><<<blocks, kWarps * 32, smem, stream>>>(remote, local, out, rows, with_local);
  return cudaGetLastError();
}

cudaError_t launch(const Variant& v, int blocks, const int4* remote, const int4* local, int4* out, int rows,
                   cudaStream_t stream) {
  switch (v.stages) {
    case 2:
      return launch_stages<2>(blocks, remote, local, out, rows, v.with_local, stream);
    case 4:
      return launch_stages<4>(blocks, remote, local, out, rows, v.with_local, stream);
    case 6:
      return launch_stages<6>(blocks, remote, local, out, rows, v.with_local, stream);
    default:
      return launch_stages<kMaxStages>(blocks, remote, local, out, rows, v.with_local, stream);
  }
}

}  // namespace

int main() {
  int ndev = 0;
  CK(cudaGetDeviceCount(&ndev));
  const int rows = 4096;  // ~58.7 MB per direction, as ht-dsv3's remote rows
  const size_t bytes = static_cast<size_t>(rows) * kRowBytes;
  if (local_staging(bytes) != 0) return 1;
  if (ndev < 2) {
    std::printf("pull: needs 2 GPUs\n");
    return 0;
  }
  int4 *src[2], *loc[2], *out[2];
  cudaStream_t st[2];
  cudaEvent_t e0[2], e1[2];
  CK(open_pair(st, e0, e1));
  for (int d = 0; d < 2; ++d) {
    CK(cudaSetDevice(d));
    CK(cudaMalloc(&src[d], bytes));
    CK(cudaMalloc(&loc[d], bytes));
    CK(cudaMalloc(&out[d], bytes));
    CK(cudaMemset(src[d], 0x3f, bytes));  // BF16 values near 0.75
    CK(cudaMemset(loc[d], 0x3e, bytes));
  }
  const Variant variants[] = {
      {"pull-s2", 2, false},   {"pull-s4", 4, false},      {"pull-s6", 6, false},
      {"pull-s12", 12, false}, {"pull+local-s6", 6, true}, {"pull+local-s12", 12, true},
  };
  std::printf("variant sms GBps_remote_per_direction\n");
  for (const Variant& v : variants) {
    for (int sms : {8, 16, 24, 32}) {
      float best = 0;
      CK(time_pair(
          st, e0, e1, bytes, 4,
          [&](int d, cudaStream_t s) {
            return launch(v, sms, src[1 - d], loc[d], out[d], rows, s);  // reads the peer's rows
          },
          &best));
      std::printf("%s %d %.1f\n", v.name, sms, best);
    }
  }
  return 0;
}
