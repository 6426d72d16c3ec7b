// The poison kernel of bench/poison.hpp: byte a of memory becomes 0x7F when a % 4 == 3, else 0xFF.
#include <algorithm>
#include <cstdint>

#include "bench/cuda.hpp"
#include "bench/poison_device.hpp"

namespace epcomm::bench {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // a grid-stride loop covers the rest

__global__ void poison_kernel(uint8_t* data, int64_t bytes) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < bytes;
       i += int64_t{gridDim.x} * blockDim.x)
    data[i] = (reinterpret_cast<std::uintptr_t>(data + i) % 4 == 3) ? 0x7F : 0xFF;  // bench/poison.hpp
}

}  // namespace

void poison_bytes(void* data, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  const auto n = static_cast<int64_t>(bytes);
  const auto blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
  poison_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<uint8_t*>(data), n);
  BENCH_CUDA(cudaGetLastError());
}

}  // namespace epcomm::bench
