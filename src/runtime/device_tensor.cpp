#include "epcomm/device_tensor.hpp"

#include "runtime/cuda_check.hpp"
#include "runtime/log.hpp"

namespace epcomm {

namespace {

class StreamOrderedAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, cudaStream_t stream) override {
    void* ptr = nullptr;
    if (bytes > 0) EPCOMM_CUDA_CHECK(cudaMallocAsync(&ptr, bytes, stream));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t, cudaStream_t stream) noexcept override {
    if (ptr == nullptr) return;
    const cudaError_t status = cudaFreeAsync(ptr, stream);
    if (status != cudaSuccess) EPCOMM_LOG_WARN("cudaFreeAsync failed during cleanup: ", cudaGetErrorString(status));
  }
};

}  // namespace

std::shared_ptr<Allocator> default_allocator() {
  static const std::shared_ptr<Allocator> allocator = std::make_shared<StreamOrderedAllocator>();
  return allocator;
}

DeviceTensor DeviceTensor::empty(const std::shared_ptr<Allocator>& allocator, DType dtype,
                                 std::initializer_list<std::int64_t> shape, cudaStream_t stream) {
  DeviceTensor t;
  t.view_ = Tensor::contiguous(nullptr, dtype, shape);
  for (int d = 0; d < t.view_.ndim; ++d)
    EPCOMM_CHECK_ARG(t.view_.shape[static_cast<std::size_t>(d)] >= 0, "DeviceTensor::empty: negative extent in ",
                     t.view_.describe());
  const std::size_t bytes = t.view_.nbytes();
  void* ptr = allocator->allocate(bytes, stream);
  t.view_.data = ptr;
  t.storage_ = std::shared_ptr<void>(ptr, [allocator, bytes, stream](void* p) {
    allocator->deallocate(p, bytes, stream);
  });
  return t;
}

}  // namespace epcomm
