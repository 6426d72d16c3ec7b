// The CUDA runtime as the benchmark uses it: a check that turns a failed call into epcomm::Error
// (category kCuda) naming the call, and owners of the few resources the benchmark makes. The
// owners' constructors throw; their destructors print a failed release and never throw.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <type_traits>

#include "bench/require.hpp"

namespace epcomm::bench {

[[noreturn]] void raise_cuda(cudaError_t status, const char* call, const char* file, int line);
// Prints a failed release (`status` not cudaSuccess) to stderr.
void report_release(cudaError_t status) noexcept;

// Releases a handle with `Release` (cudaFree, cudaStreamDestroy, ...).
template <auto Release>
struct Releaser {
  template <typename Handle>
  void operator()(Handle handle) const noexcept {
    report_release(Release(handle));
  }
};
template <typename Handle, auto Release>
using Owned = std::unique_ptr<std::remove_pointer_t<Handle>, Releaser<Release>>;

}  // namespace epcomm::bench

// Every CUDA runtime call of the benchmark is checked.
#define BENCH_CUDA(call)                                                                                     \
  do {                                                                                                       \
    const cudaError_t bench_status_ = (call);                                                                \
    if (bench_status_ != cudaSuccess) ::epcomm::bench::raise_cuda(bench_status_, #call, __FILE__, __LINE__); \
  } while (0)

namespace epcomm::bench {

// cudaMalloc'd bytes (the inputs, the baseline's buffers, the ceiling's source and slots).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  void* get() const { return ptr_.get(); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(get());
  }
  std::size_t bytes() const { return ptr_ ? bytes_ : 0; }

 private:
  Owned<void*, cudaFree> ptr_;
  std::size_t bytes_ = 0;
};

// Pinned host memory (what the baseline copies its counts into).
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  explicit PinnedHostBuffer(std::size_t bytes);
  void* host() const { return ptr_.get(); }

 private:
  Owned<void*, cudaFreeHost> ptr_;
};

// A non-blocking stream.
class Stream {
 public:
  Stream();
  cudaStream_t get() const { return stream_.get(); }

 private:
  Owned<cudaStream_t, cudaStreamDestroy> stream_;
};

// An event; `timing` events measure elapsed time.
class Event {
 public:
  explicit Event(bool timing = false);
  cudaEvent_t get() const { return event_.get(); }
  void record(cudaStream_t stream) { BENCH_CUDA(cudaEventRecord(get(), stream)); }

 private:
  Owned<cudaEvent_t, cudaEventDestroy> event_;
};

// A peer's allocation opened from its IPC handle (the NVLink ceiling's copies).
class IpcMapping {
 public:
  IpcMapping() = default;
  explicit IpcMapping(const cudaIpcMemHandle_t& handle);
  void* get() const { return ptr_.get(); }

 private:
  Owned<void*, cudaIpcCloseMemHandle> ptr_;
};

cudaIpcMemHandle_t ipc_handle_of(const DeviceBuffer& buffer);

// Copies host memory to the device and waits for the device: a plain cudaMemcpy from pageable memory
// may return before the bytes land, and work on non-blocking streams would not wait for them.
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes);

}  // namespace epcomm::bench
