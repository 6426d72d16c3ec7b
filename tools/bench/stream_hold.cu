#include "bench/stream_hold.hpp"

#include <cstdint>

#include "bench/cuda.hpp"

namespace epcomm::bench {

namespace {

__global__ void hold_kernel(std::uint64_t ns) {
  std::uint64_t start;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  for (std::uint64_t now = start; now - start < ns;) {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  }
}

}  // namespace

void hold_stream(cudaStream_t stream, double us) {
  if (us <= 0) return;
  hold_kernel<<<1, 1, 0, stream>>>(static_cast<std::uint64_t>(us * 1000.0));
  BENCH_CUDA(cudaGetLastError());
}

}  // namespace epcomm::bench
