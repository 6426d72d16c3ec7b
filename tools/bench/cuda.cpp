#include "bench/cuda.hpp"

#include <cstdio>

namespace epcomm::bench {

void raise_cuda(cudaError_t status, const char* call, const char* file, int line) {
  throw Error(ErrorCategory::kCuda,
              concat(call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")"),
              file, line);
}

void report_release(cudaError_t status) noexcept {
  if (status != cudaSuccess)
    std::fprintf(stderr, "epcomm-bench: releasing a CUDA resource failed: %s (%s)\n",
                 cudaGetErrorName(status), cudaGetErrorString(status));
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  void* ptr = nullptr;
  if (bytes > 0) BENCH_CUDA(cudaMalloc(&ptr, bytes));
  ptr_.reset(ptr);
}

PinnedHostBuffer::PinnedHostBuffer(std::size_t bytes) {
  void* ptr = nullptr;
  BENCH_CUDA(cudaMallocHost(&ptr, bytes));
  ptr_.reset(ptr);
}

Stream::Stream() {
  cudaStream_t stream = nullptr;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_.reset(stream);
}

Event::Event(bool timing) {
  cudaEvent_t event = nullptr;
  BENCH_CUDA(cudaEventCreateWithFlags(&event, timing ? cudaEventDefault : cudaEventDisableTiming));
  event_.reset(event);
}

IpcMapping::IpcMapping(const cudaIpcMemHandle_t& handle) {
  void* ptr = nullptr;
  BENCH_CUDA(cudaIpcOpenMemHandle(&ptr, handle, cudaIpcMemLazyEnablePeerAccess));
  ptr_.reset(ptr);
}

cudaIpcMemHandle_t ipc_handle_of(const DeviceBuffer& buffer) {
  cudaIpcMemHandle_t handle{};
  BENCH_CUDA(cudaIpcGetMemHandle(&handle, buffer.get()));
  return handle;
}

void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  BENCH_CUDA(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
  BENCH_CUDA(cudaDeviceSynchronize());
}

}  // namespace epcomm::bench
