// Adding BF16 values into float32 accumulators, as the high-throughput combine kernels (one and
// several domains) reduce rows. Device code only.
#pragma once

#include <cuda_bf16.h>

namespace epcomm {

// acc[0..8) += the 8 BF16 values of one 16-byte piece, in order.
__device__ __forceinline__ void add_bf16x8(float* acc, const int4& piece) {
  const auto* h = reinterpret_cast<const __nv_bfloat162*>(&piece);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    acc[2 * i] += f.x;
    acc[2 * i + 1] += f.y;
  }
}

}  // namespace epcomm
