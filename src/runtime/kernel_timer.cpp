#include "runtime/kernel_timer.hpp"

#include "runtime/cuda_check.hpp"

namespace epcomm {

void KernelTimer::begin(cudaStream_t stream) {
  if (!enabled_) return;
  while (events_.size() < used_ + 2) events_.emplace_back(/*timing=*/true);
  events_[used_].record(stream);
}

void KernelTimer::end(cudaStream_t stream) {
  if (!enabled_) return;
  events_[used_ + 1].record(stream);
  used_ += 2;
}

double KernelTimer::total_us() {
  if (!enabled_) return -1.0;
  double total = 0.0;
  for (std::size_t i = 0; i + 1 < used_; i += 2) {
    EPCOMM_CUDA_CHECK(cudaEventSynchronize(events_[i + 1].get()));
    float ms = 0.0f;
    EPCOMM_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i].get(), events_[i + 1].get()));
    total += 1000.0 * ms;
  }
  return total;
}

}  // namespace epcomm
