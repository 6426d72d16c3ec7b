// Whether this machine has a GPU at all, asked one way by every program that must tell "no GPU
// here" (skip) from "a GPU we cannot use" (fail): the GPU tests, epcomm-bench and epcomm-doctor.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "epcomm/export.hpp"

namespace epcomm {

struct GpuPresence {
  cudaError_t count_error = cudaSuccess;  // cudaGetDeviceCount's result
  std::string error_name;                 // its cudaGetErrorName
  std::string error_text;                 // its cudaGetErrorString
  int num_gpus = 0;                       // its count (meaningful on cudaSuccess)
  bool driver_installed = true;           // libcuda.so.1 can be loaded

  // No NVIDIA driver at all: the runtime then says cudaErrorInsufficientDriver, which on a machine
  // with a driver means a driver older than the runtime (a failure, not a missing GPU).
  bool no_driver() const { return count_error == cudaErrorInsufficientDriver && !driver_installed; }
  // No GPU: cudaErrorNoDevice, a count of 0, or no driver at all. Any other error is a failure.
  bool no_gpu() const {
    return count_error == cudaErrorNoDevice || no_driver() || (count_error == cudaSuccess && num_gpus == 0);
  }
};

// Asks the CUDA runtime for its devices and whether a driver can be loaded; leaves no CUDA error
// pending (cudaGetLastError is cleared). Never throws for a missing GPU.
EPCOMM_API GpuPresence probe_gpu_presence();

}  // namespace epcomm
