#include "bench/poison_device.hpp"

#include <span>

#include "bench/poison.hpp"

namespace epcomm::bench {

void poison_view(const Tensor& view, cudaStream_t stream) {
  if (!view.defined()) return;
  const auto dims = static_cast<std::size_t>(view.ndim);
  const std::size_t bytes = view_span_bytes(std::span(view.shape.data(), dims),
                                            std::span(view.stride.data(), dims), dtype_size(view.dtype));
  poison_bytes(view.data, bytes, stream);
}

void* PoisonAllocator::allocate(std::size_t bytes, cudaStream_t stream) {
  void* ptr = inner_->allocate(bytes, stream);
  if (armed_ && ptr != nullptr && bytes > 0) poison_bytes(ptr, bytes, stream);
  return ptr;
}

void PoisonAllocator::deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept {
  inner_->deallocate(ptr, bytes, stream);
}

}  // namespace epcomm::bench
