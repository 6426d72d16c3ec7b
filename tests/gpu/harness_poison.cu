// fill_poison (harness.hpp): the poison pattern written by a kernel.
//
// NOTE: it was a host-to-device copy of a seed doubled by device-to-device copies, and
// compute-sanitizer's initcheck reported the doublings as reads of uninitialized memory even after
// the seed copy was waited for (2026-12-05, a rank sharing the GPU). A kernel's stores are what
// initcheck tracks best, need no host memory and capture into a graph like any launch.
#include <cstdint>

#include "checks.hpp"
#include "harness.hpp"

namespace epcomm::test {

namespace {

// Byte i of the pattern is the low byte of kPoison16 where i is even, the high byte where odd.
__global__ void poison_kernel(std::uint8_t* p, std::size_t bytes) {
  const std::uint8_t lo = kPoison16 & 0xff, hi = kPoison16 >> 8;
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x; i < bytes; i += stride)
    p[i] = i % 2 == 0 ? lo : hi;
}

}  // namespace

void fill_poison(void* ptr, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  constexpr unsigned kThreads = 256, kMaxBlocks = 1024;
  const std::size_t wanted = (bytes + kThreads - 1) / kThreads;
  const unsigned blocks = wanted < kMaxBlocks ? static_cast<unsigned>(wanted) : kMaxBlocks;
  poison_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<std::uint8_t*>(ptr), bytes);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm::test
