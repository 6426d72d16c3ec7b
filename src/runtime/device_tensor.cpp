#include "epcomm/device_tensor.hpp"

#include <cstdint>
#include <mutex>
#include <set>

#include "runtime/cuda_check.hpp"
#include "runtime/log.hpp"

namespace epcomm {

namespace {

// NOTE: the device's default memory pool returns its memory to the driver at every synchronisation
// unless told otherwise, and re-mapping ~100 MB of outputs then costs hundreds of microseconds per
// dispatch. Keep what it has (like a framework's caching allocator does).
void keep_pool_memory() {
  static std::mutex mutex;
  static std::set<int> configured;
  int device = 0;
  EPCOMM_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (!configured.insert(device).second) return;
  cudaMemPool_t pool = nullptr;
  EPCOMM_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t keep = UINT64_MAX;
  EPCOMM_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}

class StreamOrderedAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, cudaStream_t stream) override {
    keep_pool_memory();
    void* ptr = nullptr;
    if (bytes > 0) EPCOMM_CUDA_CHECK(cudaMallocAsync(&ptr, bytes, stream));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t, cudaStream_t stream) noexcept override {
    if (ptr == nullptr) return;
    const cudaError_t status = cudaFreeAsync(ptr, stream);
    if (status != cudaSuccess)
      EPCOMM_LOG_WARN("cudaFreeAsync failed during cleanup: ", cudaGetErrorString(status));
  }
};

}  // namespace

std::shared_ptr<Allocator> default_allocator() {
  static const std::shared_ptr<Allocator> allocator = std::make_shared<StreamOrderedAllocator>();
  return allocator;
}

DeviceTensor DeviceTensor::borrowed(const Tensor& view) {
  DeviceTensor t;
  t.view_ = view;
  return t;
}

DeviceTensor DeviceTensor::empty(const std::shared_ptr<Allocator>& allocator, DType dtype,
                                 std::initializer_list<std::int64_t> shape, cudaStream_t stream) {
  DeviceTensor t;
  t.view_ = Tensor::contiguous(nullptr, dtype, shape);
  for (int d = 0; d < t.view_.ndim; ++d)
    EPCOMM_CHECK_ARG(t.view_.shape[static_cast<std::size_t>(d)] >= 0,
                     "DeviceTensor::empty: negative extent in ", t.view_.describe());
  const std::size_t bytes = t.view_.nbytes();
  void* ptr = allocator->allocate(bytes, stream);
  t.view_.data = ptr;
  t.storage_ = std::shared_ptr<void>(
      ptr, [allocator, bytes, stream](void* p) { allocator->deallocate(p, bytes, stream); });
  return t;
}

}  // namespace epcomm
