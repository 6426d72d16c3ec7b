// Early launch (programmatic dependent launch, sm_90): a library kernel may be scheduled before the
// kernel ahead of it on the stream has finished, and waits for it on the device instead
// (early_launch_entry, early_launch.cuh). What it saves is the launch's latency between two
// kernels: the next grid's blocks are placed while the previous one drains. EPCOMM_EARLY_LAUNCH=0
// launches every kernel as <<<>>> does.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/cuda_check.hpp"

namespace epcomm {

// EPCOMM_EARLY_LAUNCH (read once per process).
bool early_launch_enabled();

// Launches `kernel` on `stream` as kernel<<<grid, block, smem, stream>>>(args...) would, allowing
// it to be scheduled early when early launch is enabled. Only for kernels whose every thread calls
// early_launch_entry() first: nothing before that call may read or write memory that the kernels
// ahead of it on the stream touch.
template <typename... Params, typename... Args>
void launch_early(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                  Args&&... args) {
  cudaLaunchAttribute early{};
  early.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  early.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &early;
  config.numAttrs = early_launch_enabled() ? 1 : 0;
  EPCOMM_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace epcomm
