// Programmatic dependent launch (PDL, sm_90): a library kernel may be placed on the GPU before the
// kernel ahead of it on the stream has finished, and waits for it on the device instead (pdl_entry,
// pdl.cuh). What it saves is launch latency between two kernels: the next grid's blocks are placed
// while the previous one drains. EPCOMM_PDL=0 launches every kernel as <<<>>> does.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "core/cuda_check.hpp"

namespace epcomm {

// EPCOMM_PDL, on an sm_90 or later device (read at the first launch of the process).
bool pdl_enabled();

// How launch_kernel starts a kernel: Launch::kPdl with programmatic dependent launch where it is
// enabled, Launch::kOrdinary as <<<>>> does.
enum class Launch { kPdl, kOrdinary };

// Launches `kernel` on `stream` as kernel<<<grid, block, smem, stream>>>(args...) would; with
// Launch::kPdl (and PDL enabled) it may be placed before the kernel ahead of it ends. Only for
// kernels whose every thread calls pdl_entry() first: nothing before that call may read or write
// memory that the kernels ahead of it on the stream touch.
template <typename... Params, typename... Args>
void launch_kernel(Launch how, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute pdl{};
  pdl.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  pdl.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &pdl;
  config.numAttrs = how == Launch::kPdl && pdl_enabled() ? 1 : 0;
  EPCOMM_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace epcomm
