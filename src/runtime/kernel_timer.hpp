// Optional timing of one call's kernels (EPCOMM_KERNEL_TIMING=1): an event pair around each launch
// on the communication stream; their summed durations are the call's kernel time, without the
// host work and launch gaps between kernels. Off by default (the events cost host time per call).
#pragma once

#include <cuda_runtime_api.h>

#include <vector>

#include "runtime/cuda_raii.hpp"

namespace epcomm {

class KernelTimer {
 public:
  explicit KernelTimer(bool enabled) : enabled_(enabled) {}
  KernelTimer(KernelTimer&&) noexcept = default;
  KernelTimer& operator=(KernelTimer&&) noexcept = default;
  bool enabled() const { return enabled_; }
  void reset() { used_ = 0; }  // at the start of a call
  void begin(cudaStream_t stream);
  void end(cudaStream_t stream);
  // Microseconds of the last call's kernels; waits for them. -1 when disabled.
  double total_us();

 private:
  bool enabled_;
  std::vector<Event> events_;  // [begin, end] per launch, reused across calls
  std::size_t used_ = 0;
};

}  // namespace epcomm
