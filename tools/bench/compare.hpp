// Element-wise comparison of device results (copied to the host) with the CPU reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace epcomm::bench {

struct Comparison {
  bool ok = true;
  std::size_t num_mismatches = 0;
  std::size_t first_mismatch = 0;  // element index; meaningful when !ok
  std::string detail;              // names the first mismatch: what, index, expected, got
};

// Bit-exact: payload rows and FP8 scales are moved, never recomputed.
Comparison compare_bytes(const char* what, const uint8_t* expected, const uint8_t* got, std::size_t count);
Comparison compare_floats_exact(const char* what, const float* expected, const float* got, std::size_t count);
// BF16 values (bit patterns): |got - expected| <= atol + rtol * |expected|; NaN never matches.
// kBf16Rtol is one BF16 step (8 mantissa bits) relative to the value.
inline constexpr float kBf16Rtol = 1.0f / 128.0f;
inline constexpr float kBf16Atol = 1e-6f;
Comparison compare_bf16(const char* what, const uint16_t* expected, const uint16_t* got, std::size_t count,
                        float rtol = kBf16Rtol, float atol = kBf16Atol);

}  // namespace epcomm::bench
