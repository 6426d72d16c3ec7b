// Checking CUDA runtime calls: every status is checked and a failure becomes an
// epcomm::Error (category kCuda) carrying the call, the CUDA error name and its text.
#pragma once

#include <cuda_runtime_api.h>

#include "core/check.hpp"

// NOTE: epcomm links only the CUDA runtime (libcudart), never the driver library, so binaries load
// on machines without a GPU driver (CI) and report "no GPU" instead of failing to start.

namespace epcomm::detail {

[[noreturn]] void raise_cuda(cudaError_t status, const char* call, const char* file, int line);

}  // namespace epcomm::detail

#define EPCOMM_CUDA_CHECK(call)                                                \
  do {                                                                         \
    const cudaError_t epcomm_status_ = (call);                                 \
    if (epcomm_status_ != cudaSuccess)                                         \
      ::epcomm::detail::raise_cuda(epcomm_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors at the launch site.
#define EPCOMM_CUDA_CHECK_LAUNCH() EPCOMM_CUDA_CHECK(cudaGetLastError())
