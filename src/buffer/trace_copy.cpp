#include "buffer/trace_copy.hpp"

#include <cuda_runtime.h>

#include "core/cuda_check.hpp"

namespace epcomm {

std::vector<std::uint64_t> copy_trace_stamps(const DeviceBuffer& record, bool clear) {
  std::vector<std::uint64_t> stamps(record.bytes() / sizeof(std::uint64_t));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  EPCOMM_CUDA_CHECK(cudaMemcpy(stamps.data(), record.get(), record.bytes(), cudaMemcpyDeviceToHost));
  if (clear) {
    EPCOMM_CUDA_CHECK(cudaMemset(record.get(), 0, record.bytes()));
    EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  }
  return stamps;
}

}  // namespace epcomm
