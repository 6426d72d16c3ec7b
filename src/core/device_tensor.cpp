#include "epcomm/device_tensor.hpp"

#include <cstdint>
#include <mutex>
#include <set>

#include "core/cuda_check.hpp"
#include "core/log.hpp"

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

std::vector<DeviceTensor> DeviceTensor::empty_together(const std::shared_ptr<Allocator>& allocator,
                                                       const std::vector<Tensor>& layouts,
                                                       cudaStream_t stream) {
  constexpr std::size_t kAlign = 256;
  std::vector<std::size_t> offsets;
  offsets.reserve(layouts.size());
  std::size_t bytes = 0;
  for (const Tensor& layout : layouts) {
    for (int d = 0; d < layout.ndim; ++d)
      EPCOMM_CHECK_ARG(layout.shape[static_cast<std::size_t>(d)] >= 0,
                       "DeviceTensor::empty_together: negative extent in ", layout.describe());
    offsets.push_back(bytes);
    bytes += (layout.nbytes() + kAlign - 1) / kAlign * kAlign;
  }
  void* ptr = allocator->allocate(bytes, stream);
  const std::shared_ptr<void> storage(
      ptr, [allocator, bytes, stream](void* p) { allocator->deallocate(p, bytes, stream); });
  std::vector<DeviceTensor> out(layouts.size());
  for (std::size_t i = 0; i < layouts.size(); ++i) {
    out[i].view_ = layouts[i];
    out[i].view_.data = ptr == nullptr ? nullptr : static_cast<char*>(ptr) + offsets[i];
    out[i].storage_ = storage;
  }
  return out;
}

DeviceTensor DeviceTensor::empty(const std::shared_ptr<Allocator>& allocator, DType dtype,
                                 std::initializer_list<std::int64_t> shape, cudaStream_t stream) {
  return empty_together(allocator, {Tensor::contiguous(nullptr, dtype, shape)}, stream)[0];
}

}  // namespace epcomm
