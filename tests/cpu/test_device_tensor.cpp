// DeviceTensor::empty_together: several outputs in one allocation. A host allocator stands in for
// the device one (nothing here touches the memory's contents).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>

#include "epcomm/device_tensor.hpp"
#include "epcomm/error.hpp"

namespace epcomm {
namespace {

struct CountingAllocator final : Allocator {
  int allocations = 0, deallocations = 0;
  std::size_t last_bytes = 0;
  void* allocate(std::size_t bytes, cudaStream_t) override {
    ++allocations;
    last_bytes = bytes;
    return std::aligned_alloc(256, bytes);
  }
  void deallocate(void* ptr, std::size_t, cudaStream_t) noexcept override {
    ++deallocations;
    std::free(ptr);
  }
};

TEST(DeviceTensor, EmptyTogetherPlacesEachTensorAt256ByteBoundariesOfOneAllocation) {
  auto allocator = std::make_shared<CountingAllocator>();
  {
    std::vector<DeviceTensor> t = DeviceTensor::empty_together(
        allocator,
        {Tensor::contiguous(nullptr, DType::kI32, {3}), Tensor::contiguous(nullptr, DType::kBF16, {5, 7168}),
         Tensor::contiguous(nullptr, DType::kBool, {0, 2}), Tensor::contiguous(nullptr, DType::kF32, {5, 8})},
        nullptr);
    ASSERT_EQ(t.size(), 4u);
    EXPECT_EQ(allocator->allocations, 1);
    const auto at = [&](int i) {
      return reinterpret_cast<std::uintptr_t>(t[static_cast<std::size_t>(i)].data());
    };
    EXPECT_EQ(at(1) - at(0), 256u);                                 // 12 bytes, rounded up
    EXPECT_EQ(at(2) - at(1), 5u * 7168 * 2);                        // already a multiple of 256
    EXPECT_EQ(at(3), at(2));                                        // an empty tensor takes no room
    EXPECT_EQ(allocator->last_bytes, 256u + 5u * 7168 * 2 + 256u);  // 160 bytes, rounded up
    EXPECT_EQ(t[1].size(1), 7168);
    EXPECT_EQ(t[3].view().dtype, DType::kF32);
    t.erase(t.begin(), t.begin() + 3);  // the memory stays while one tensor is left
    EXPECT_EQ(allocator->deallocations, 0);
  }
  EXPECT_EQ(allocator->deallocations, 1);
}

TEST(DeviceTensor, EmptyTogetherRefusesANegativeExtent) {
  auto allocator = std::make_shared<CountingAllocator>();
  EXPECT_THROW(
      DeviceTensor::empty_together(allocator, {Tensor::contiguous(nullptr, DType::kI32, {-1})}, nullptr),
      Error);
  EXPECT_EQ(allocator->allocations, 0);
}

}  // namespace
}  // namespace epcomm
