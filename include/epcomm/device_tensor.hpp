// Owning device tensors and the allocator interface outputs come from.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <vector>

#include "epcomm/export.hpp"
#include "epcomm/types.hpp"

namespace epcomm {

// Where epcomm allocates the outputs it returns. The default is stream-ordered cudaMallocAsync;
// a framework passes its own (PyTorch's caching allocator, say).
class EPCOMM_API Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes, cudaStream_t stream) = 0;
  // Must not throw.
  virtual void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept = 0;
};

EPCOMM_API std::shared_ptr<Allocator> default_allocator();

// A tensor whose memory is owned (shared among copies) and returned to its allocator, on the
// stream it was allocated on, when the last copy goes.
class EPCOMM_API DeviceTensor {
 public:
  DeviceTensor() = default;
  static DeviceTensor empty(const std::shared_ptr<Allocator>& allocator, DType dtype,
                            std::initializer_list<std::int64_t> shape, cudaStream_t stream);
  // Tensors shaped like `layouts` (contiguous; their data pointers are ignored) in one allocation,
  // each at a 256-byte boundary, so a call that returns several outputs asks the allocator once. The
  // memory goes back when the last of them goes.
  static std::vector<DeviceTensor> empty_together(const std::shared_ptr<Allocator>& allocator,
                                                  const std::vector<Tensor>& layouts, cudaStream_t stream);
  // A view of memory owned elsewhere (nothing is freed with it); valid as long as its owner says.
  static DeviceTensor borrowed(const Tensor& view);

  const Tensor& view() const { return view_; }
  operator const Tensor&() const { return view_; }  // NOLINT: a DeviceTensor is usable as a view
  void* data() const { return view_.data; }
  std::int64_t size(int dim) const { return view_.size(dim); }
  std::int64_t numel() const { return view_.numel(); }
  bool defined() const { return view_.defined(); }

 private:
  Tensor view_;
  std::shared_ptr<void> storage_;
};

}  // namespace epcomm
