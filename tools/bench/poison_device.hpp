// Writing the poison of bench/poison.hpp on the GPU: into raw memory and views, and into every
// output the library allocates while a checked call runs (PoisonAllocator).
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <memory>

#include "epcomm/device_tensor.hpp"
#include "epcomm/types.hpp"

namespace epcomm::bench {

// Queues the poison over [data, data + bytes) on `stream` (poison_kernels.cu).
void poison_bytes(void* data, std::size_t bytes, cudaStream_t stream);
// Every byte a view can reach (view_span_bytes); nothing for an undefined view.
void poison_view(const Tensor& view, cudaStream_t stream);

// The allocator the benchmark gives its Buffers (BufferOptions::allocator): the default one, and
// while armed, every allocation is poisoned on its stream before the library receives it, so
// outputs a checked call allocates hold the poison until the call writes them (a pool block still
// holding an earlier call's identical result cannot pass for a write).
class PoisonAllocator : public Allocator {
 public:
  explicit PoisonAllocator(std::shared_ptr<Allocator> inner = default_allocator())
      : inner_(std::move(inner)) {}
  void* allocate(std::size_t bytes, cudaStream_t stream) override;
  void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept override;
  void arm(bool armed) { armed_ = armed; }

 private:
  std::shared_ptr<Allocator> inner_;
  std::atomic<bool> armed_{false};
};

// Arms the allocator for one scope (the checked call).
class ArmedPoison {
 public:
  explicit ArmedPoison(PoisonAllocator& allocator) : allocator_(allocator) { allocator_.arm(true); }
  ~ArmedPoison() { allocator_.arm(false); }
  ArmedPoison(const ArmedPoison&) = delete;
  ArmedPoison& operator=(const ArmedPoison&) = delete;

 private:
  PoisonAllocator& allocator_;
};

}  // namespace epcomm::bench
