// FastDivisor (src/core/fast_divisor.hpp) against the division it replaces: every numerator near
// each multiple of the divisor, for divisors that are small, powers of two, odd, and near 2^31.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/fast_divisor.hpp"

namespace epcomm {
namespace {

constexpr int kMaxNumerator = 0x7fffffff;

void expect_divides(int d, int n) {
  ASSERT_EQ(FastDivisor(d).divide(n), n / d) << n << " / " << d;
}

TEST(FastDivisor, EveryNumeratorUpTo70000ForSmallDivisors) {
  for (int d = 1; d <= 300; ++d) {
    const FastDivisor div(d);
    for (int n = 0; n <= 70000; ++n) ASSERT_EQ(div.divide(n), n / d) << n << " / " << d;
  }
}

TEST(FastDivisor, AroundMultiplesAndAtTheLimits) {
  std::vector<int> divisors = {1, 2, 3, 7, 8, 9, 31, 32, 64, 72, 255, 256, 257, 1000, 4096, 65535, 65536, 65537,
                               1 << 20, (1 << 20) + 1, 0x3fffffff, 0x40000000, kMaxNumerator - 1, kMaxNumerator};
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) divisors.push_back(static_cast<int>(rng() % kMaxNumerator) + 1);
  for (const int d : divisors) {
    for (int n : {0, 1, d - 1, d, kMaxNumerator - 1, kMaxNumerator}) {
      if (n >= 0) expect_divides(d, n);
    }
    // q * d - 1, q * d and q * d + 1 for quotients spread over the whole range.
    const std::int64_t max_q = kMaxNumerator / d;
    for (int k = 0; k <= 1000; ++k) {
      const std::int64_t base = max_q * k / 1000 * d;
      for (const std::int64_t n : {base - 1, base, base + 1})
        if (n >= 0 && n <= kMaxNumerator) expect_divides(d, static_cast<int>(n));
    }
    for (int i = 0; i < 2000; ++i) expect_divides(d, static_cast<int>(rng() & 0x7fffffffu));
  }
}

}  // namespace
}  // namespace epcomm
