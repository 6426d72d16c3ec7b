// Checking CUDA runtime and driver calls: every status is checked and a failure becomes an
// epcomm::Error (category kCuda) carrying the call, the CUDA error name and its text.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "runtime/check.hpp"

namespace epcomm::detail {

[[noreturn]] void raise_cuda(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void raise_cu(CUresult status, const char* call, const char* file, int line);

}  // namespace epcomm::detail

#define EPCOMM_CUDA_CHECK(call)                                                         \
  do {                                                                                  \
    const cudaError_t epcomm_status_ = (call);                                          \
    if (epcomm_status_ != cudaSuccess)                                                  \
      ::epcomm::detail::raise_cuda(epcomm_status_, #call, __FILE__, __LINE__);          \
  } while (0)

#define EPCOMM_CU_CHECK(call)                                                           \
  do {                                                                                  \
    const CUresult epcomm_status_ = (call);                                             \
    if (epcomm_status_ != CUDA_SUCCESS)                                                 \
      ::epcomm::detail::raise_cu(epcomm_status_, #call, __FILE__, __LINE__);            \
  } while (0)

// After a kernel launch: reports launch-configuration errors at the launch site.
#define EPCOMM_CUDA_CHECK_LAUNCH() EPCOMM_CUDA_CHECK(cudaGetLastError())
