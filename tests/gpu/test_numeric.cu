// The reference's float32 conversions against the device intrinsics the kernels use, for every one
// of the 2^32 float32 bit patterns: ref::float_to_e4m3 against __nv_cvt_float_to_fp8(v,
// __NV_SATFINITE, __NV_E4M3) (ll_dispatch_send.cuh) and ref::float_to_bf16 against
// __float2bfloat16_rn (ll_combine.cuh). This is the test epcomm/reference.hpp names for its
// "checked against the device intrinsic for all 2^32 inputs". One rank suffices (each rank of a
// larger run sweeps on its own GPU).
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::test {
namespace {

constexpr std::uint64_t kPatterns = std::uint64_t{1} << 32;
constexpr std::uint64_t kChunk = std::uint64_t{1} << 28;  // patterns per launch: 256 MiB of FP8, 512 of BF16

// Pattern base + i converted both ways, for i in [0, kChunk).
__global__ void convert_chunk(std::uint32_t base, std::uint8_t* fp8, std::uint16_t* bf16) {
  for (std::uint64_t i = threadIdx.x + static_cast<std::uint64_t>(blockIdx.x) * blockDim.x; i < kChunk;
       i += static_cast<std::uint64_t>(blockDim.x) * gridDim.x) {
    const float v = __uint_as_float(base + static_cast<std::uint32_t>(i));
    fp8[i] = static_cast<std::uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
    bf16[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

struct SweepResult {
  std::uint64_t fp8_mismatches = 0, bf16_mismatches = 0;
  std::uint32_t fp8_first = 0, bf16_first = 0;  // first pattern that differs (valid when counted)
};

// Compares one chunk with the reference on every host core; `base` is the chunk's first pattern.
void compare_chunk(std::uint32_t base, const std::vector<std::uint8_t>& fp8,
                   const std::vector<std::uint16_t>& bf16, SweepResult& total) {
  const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<SweepResult> part(workers);
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      SweepResult& r = part[w];
      for (std::uint64_t i = kChunk * w / workers; i < kChunk * (w + 1) / workers; ++i) {
        const std::uint32_t bits = base + static_cast<std::uint32_t>(i);
        float v;
        std::memcpy(&v, &bits, sizeof(v));
        if (ref::float_to_e4m3(v) != fp8[i] && r.fp8_mismatches++ == 0) r.fp8_first = bits;
        if (ref::float_to_bf16(v) != bf16[i] && r.bf16_mismatches++ == 0) r.bf16_first = bits;
      }
    });
  for (auto& t : threads) t.join();
  for (const SweepResult& r : part) {  // workers cover ascending ranges: the first found stays first
    if (r.fp8_mismatches > 0 && total.fp8_mismatches == 0) total.fp8_first = r.fp8_first;
    if (r.bf16_mismatches > 0 && total.bf16_mismatches == 0) total.bf16_first = r.bf16_first;
    total.fp8_mismatches += r.fp8_mismatches;
    total.bf16_mismatches += r.bf16_mismatches;
  }
}

// Catches (issue 18, item 12): a reference conversion that differs from the device's for any
// input, which a GPU test comparing payloads bit-exactly would report as a kernel bug (or miss).
TEST(Numeric, ReferenceConversionsMatchTheDeviceForAll2To32Floats) {
  const cudaStream_t s = gpu_env().stream;
  DeviceTensor fp8_dev =
      DeviceTensor::empty(default_allocator(), DType::kU8, {static_cast<std::int64_t>(kChunk)}, s);
  DeviceTensor bf16_dev =
      DeviceTensor::empty(default_allocator(), DType::kBF16, {static_cast<std::int64_t>(kChunk)}, s);
  std::vector<std::uint8_t> fp8(kChunk);
  std::vector<std::uint16_t> bf16(kChunk);
  SweepResult result;
  for (std::uint64_t base = 0; base < kPatterns; base += kChunk) {
    convert_chunk<<<1024, 256, 0, s>>>(static_cast<std::uint32_t>(base),
                                       static_cast<std::uint8_t*>(fp8_dev.data()),
                                       static_cast<std::uint16_t*>(bf16_dev.data()));
    EPCOMM_CUDA_CHECK_LAUNCH();
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(fp8.data(), fp8_dev.data(), kChunk, cudaMemcpyDeviceToHost, s));
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(bf16.data(), bf16_dev.data(), kChunk * 2, cudaMemcpyDeviceToHost, s));
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(s));
    compare_chunk(static_cast<std::uint32_t>(base), fp8, bf16, result);
  }
  EXPECT_EQ(result.fp8_mismatches, 0u)
      << "float_to_e4m3 differs from __nv_cvt_float_to_fp8, first at bits 0x" << std::hex << result.fp8_first;
  EXPECT_EQ(result.bf16_mismatches, 0u)
      << "float_to_bf16 differs from __float2bfloat16_rn, first at bits 0x" << std::hex << result.bf16_first;
}

}  // namespace
}  // namespace epcomm::test
