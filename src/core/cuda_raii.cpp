#include "core/cuda_raii.hpp"

#include <cstring>

#include "core/cuda_check.hpp"
#include "core/log.hpp"

namespace epcomm {

namespace {
// Destructors log instead of throwing.
void log_release_failure(cudaError_t status, const char* what) {
  if (status != cudaSuccess) EPCOMM_LOG_WARN(what, " failed during cleanup: ", cudaGetErrorString(status));
}
}  // namespace

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) EPCOMM_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) log_release_failure(cudaFree(ptr_), "cudaFree");
}

MappedHostBuffer::MappedHostBuffer(std::size_t bytes) : bytes_(bytes) {
  EPCOMM_CUDA_CHECK(cudaHostAlloc(&host_, bytes, cudaHostAllocMapped | cudaHostAllocPortable));
  EPCOMM_CUDA_CHECK(cudaHostGetDevicePointer(&device_, host_, 0));
  std::memset(host_, 0, bytes);  // words the host waits on start from a known value
}
MappedHostBuffer::~MappedHostBuffer() {
  if (host_ != nullptr) log_release_failure(cudaFreeHost(host_), "cudaFreeHost");
}

Stream::Stream() {
  EPCOMM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}
Stream::~Stream() {
  if (stream_ != nullptr) log_release_failure(cudaStreamDestroy(stream_), "cudaStreamDestroy");
}

Event::Event(bool timing) {
  EPCOMM_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
Event::~Event() {
  if (event_ != nullptr) log_release_failure(cudaEventDestroy(event_), "cudaEventDestroy");
}
void Event::record(cudaStream_t stream) {
  EPCOMM_CUDA_CHECK(cudaEventRecord(event_, stream));
}

IpcMapping::IpcMapping(const cudaIpcMemHandle_t& handle) {
  EPCOMM_CUDA_CHECK(cudaIpcOpenMemHandle(&ptr_, handle, cudaIpcMemLazyEnablePeerAccess));
}
IpcMapping::~IpcMapping() {
  if (ptr_ != nullptr) log_release_failure(cudaIpcCloseMemHandle(ptr_), "cudaIpcCloseMemHandle");
}

void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  EPCOMM_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
}

cudaIpcMemHandle_t ipc_handle_of(const DeviceBuffer& buffer) {
  cudaIpcMemHandle_t handle{};
  EPCOMM_CUDA_CHECK(cudaIpcGetMemHandle(&handle, buffer.get()));
  return handle;
}

}  // namespace epcomm
