#include "faults/context_probe.hpp"

#include <cuda_runtime_api.h>

namespace epcomm::faults {

namespace {

constexpr int kThreads = 32;

__global__ void add_lane_kernel(int* values) {
  values[threadIdx.x] += static_cast<int>(threadIdx.x);
}

std::string failed(const char* what, cudaError_t status) {
  return std::string(what) + ": " + cudaGetErrorString(status);
}

}  // namespace

std::string check_cuda_context() {
  cudaError_t s = cudaDeviceSynchronize();
  if (s != cudaSuccess) return failed("cudaDeviceSynchronize", s);
  int* values = nullptr;
  if ((s = cudaMalloc(&values, kThreads * sizeof(int))) != cudaSuccess) return failed("cudaMalloc", s);
  std::string error;
  int host[kThreads] = {};
  if ((s = cudaMemset(values, 0, sizeof host)) != cudaSuccess) error = failed("cudaMemset", s);
  if (error.empty()) {
    add_lane_kernel<<<1, kThreads>>>(values);
    if ((s = cudaGetLastError()) != cudaSuccess) error = failed("kernel launch", s);
  }
  if (error.empty() && (s = cudaMemcpy(host, values, sizeof host, cudaMemcpyDeviceToHost)) != cudaSuccess)
    error = failed("cudaMemcpy", s);
  for (int i = 0; error.empty() && i < kThreads; ++i)
    if (host[i] != i) error = "the probe kernel computed a wrong value at lane " + std::to_string(i);
  if ((s = cudaFree(values)) != cudaSuccess && error.empty()) error = failed("cudaFree", s);
  return error;
}

}  // namespace epcomm::faults
