// RAII owners of CUDA resources. Constructors throw epcomm::Error on failure; destructors never
// throw (a failed release is logged).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

namespace epcomm {

// Device memory from cudaMalloc (the communication regions, which are shared over IPC).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    DeviceBuffer tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void swap(DeviceBuffer& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
  }
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Pinned host memory mapped into the device address space (device-to-host flags and counters).
class MappedHostBuffer {
 public:
  MappedHostBuffer() = default;
  explicit MappedHostBuffer(std::size_t bytes);
  ~MappedHostBuffer();
  MappedHostBuffer(MappedHostBuffer&& other) noexcept { swap(other); }
  MappedHostBuffer& operator=(MappedHostBuffer&& other) noexcept {
    MappedHostBuffer t(std::move(other));
    swap(t);
    return *this;
  }
  MappedHostBuffer(const MappedHostBuffer&) = delete;
  MappedHostBuffer& operator=(const MappedHostBuffer&) = delete;

  void* host() const { return host_; }
  void* device() const { return device_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void swap(MappedHostBuffer& o) noexcept {
    std::swap(host_, o.host_);
    std::swap(device_, o.device_);
    std::swap(bytes_, o.bytes_);
  }
  void* host_ = nullptr;
  void* device_ = nullptr;
  std::size_t bytes_ = 0;
};

class Stream {
 public:
  Stream();  // non-blocking, highest priority is not requested
  ~Stream();
  Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  Stream& operator=(Stream&&) = delete;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  Event& operator=(Event&& other) noexcept {
    std::swap(event_, other.event_);
    return *this;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);

 private:
  cudaEvent_t event_ = nullptr;
};

// A peer's allocation opened from its cudaIpcMemHandle_t; closed on destruction.
class IpcMapping {
 public:
  IpcMapping() = default;
  explicit IpcMapping(const cudaIpcMemHandle_t& handle);
  ~IpcMapping();
  IpcMapping(IpcMapping&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  IpcMapping& operator=(IpcMapping&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    return *this;
  }
  IpcMapping(const IpcMapping&) = delete;
  IpcMapping& operator=(const IpcMapping&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

// Copies host memory to the device and returns once the bytes are on the device. A plain cudaMemcpy
// from pageable memory may return while its DMA is still landing, on the legacy default stream,
// which work on non-blocking streams does not wait for: a kernel launched there right after could
// read part of the old contents.
void copy_to_device(void* device_dst, const void* host_src, std::size_t bytes);

cudaIpcMemHandle_t ipc_handle_of(const DeviceBuffer& buffer);

}  // namespace epcomm
