// Division by a divisor fixed for a whole kernel, without a division per use: a 32-bit division is
// ~20 instructions, this is a multiply-high, a multiply-add and a correction. Host and device (the
// host form is what the CPU test checks exhaustively).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define EPCOMM_FAST_DIV_HD __host__ __device__
#else
#define EPCOMM_FAST_DIV_HD
#endif

namespace epcomm {

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31. With m = floor((2^32 - 1) / d),
// n * m / 2^32 > n / d - 2n / 2^32 > n / d - 1, and <= n / d: so floor(n * m / 2^32) is floor(n / d)
// or one less, and one correction finds which.
class FastDivisor {
 public:
  EPCOMM_FAST_DIV_HD explicit FastDivisor(int divisor)
      : d_(static_cast<std::uint32_t>(divisor)), m_(0xffffffffu / static_cast<std::uint32_t>(divisor)) {}

  EPCOMM_FAST_DIV_HD int divisor() const { return static_cast<int>(d_); }

  EPCOMM_FAST_DIV_HD int divide(int n) const {
    const auto u = static_cast<std::uint32_t>(n);
#if defined(__CUDA_ARCH__)
    std::uint32_t q = __umulhi(u, m_);
#else
    auto q = static_cast<std::uint32_t>((static_cast<std::uint64_t>(u) * m_) >> 32);
#endif
    if (u - q * d_ >= d_) ++q;
    return static_cast<int>(q);
  }

 private:
  std::uint32_t d_, m_;
};

}  // namespace epcomm

#undef EPCOMM_FAST_DIV_HD
