#include "buffer/barrier.cuh"
#include "buffer/barrier.hpp"
#include "core/cuda_check.hpp"

namespace epcomm {

namespace {
constexpr int kBarrierThreads = 128;  // >= kMaxDomainRanks, one thread per peer
static_assert(kBarrierThreads >= kMaxDomainRanks);

__global__ void __launch_bounds__(kBarrierThreads, 1) domain_barrier_kernel(DomainView view, OpId op) {
  domain_barrier_block(view, op);
}
}  // namespace

void launch_domain_barrier(const DomainView& view, void* stream, OpId op) {
  domain_barrier_kernel<<<1, kBarrierThreads, 0, static_cast<cudaStream_t>(stream)>>>(view, op);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
