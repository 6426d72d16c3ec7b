// What every example needs around epcomm: a CUDA status check, host vectors uploaded as device
// tensors, and the GPU of this process (LOCAL_RANK, as epcomm-run and torchrun set it).
#pragma once

#include <cuda_runtime.h>
#include <epcomm/device_tensor.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK_CUDA(call)                                                          \
  do {                                                                            \
    const cudaError_t status = (call);                                            \
    if (status != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(status)); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

template <typename T>
epcomm::DeviceTensor to_device(const std::vector<T>& host, epcomm::DType dtype, std::int64_t rows,
                               std::int64_t cols) {
  auto t = epcomm::DeviceTensor::empty(epcomm::default_allocator(), dtype, {rows, cols}, nullptr);
  CHECK_CUDA(cudaMemcpy(t.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return t;
}

// Selects this process's GPU; false (after saying so) on a machine without one.
inline bool use_local_gpu() {
  int num_gpus = 0;
  if (cudaGetDeviceCount(&num_gpus) != cudaSuccess || num_gpus == 0) {
    std::printf("no GPU: nothing to run\n");
    return false;
  }
  // Rank r runs on GPU r mod count, so several ranks may share one GPU (correct, not fast).
  const char* local_rank = std::getenv("LOCAL_RANK");
  CHECK_CUDA(cudaSetDevice(local_rank ? std::atoi(local_rank) % num_gpus : 0));
  return true;
}
