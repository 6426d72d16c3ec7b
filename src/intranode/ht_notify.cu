// notify's kernel (one block: ht_notify_block.cuh) and prepare, the barrier that opens a cached
// dispatch.
#include "intranode/ht_notify_block.cuh"

#include "core/cuda_check.hpp"
#include "core/pdl.cuh"

namespace epcomm {

namespace {

__global__ void __launch_bounds__(kNotifyThreads, 1) ht_notify_kernel(HtNotifyArgs a) {
  pdl_entry();
  ht_notify_block(a);
}

// Zeroes this rank's progress counters, then a barrier that checks every peer's call against
// `sig`: no peer writes them for the next operation before they are zero, and a peer that made
// another call is reported before a row moves.
__global__ void __launch_bounds__(kNotifyThreads, 1)
    ht_prepare_kernel(DomainView v, int num_channels, std::int32_t* recv_copied, OpId op, CallSignature sig) {
  pdl_entry();
  zero_counters(v, num_channels, recv_copied);
  __syncthreads();
  domain_barrier_block(v, op, &sig);
}

}  // namespace

void launch_ht_notify(const HtNotifyArgs& args, void* stream) {
  launch_kernel(Launch::kPdl, ht_notify_kernel, 1, kNotifyThreads, 0, static_cast<cudaStream_t>(stream),
                args);
}

void launch_ht_prepare(const DomainView& view, int num_channels, std::int32_t* recv_copied, OpId op,
                       const CallSignature& sig, Launch how, void* stream) {
  launch_kernel(how, ht_prepare_kernel, 1, kNotifyThreads, 0, static_cast<cudaStream_t>(stream), view,
                num_channels, recv_copied, op, sig);
}

}  // namespace epcomm
