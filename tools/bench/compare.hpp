// Element-wise comparison of device results (copied to the host) with the CPU reference.
//
// Every comparison takes the element count from the reference: a result of another size (an empty
// tensor, a short download) fails, naming both counts, before any element is compared, so an output
// that holds nothing can never "compare nothing" and pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace epcomm::bench {

struct Comparison {
  bool ok = true;
  std::size_t num_mismatches = 0;
  std::size_t first_mismatch = 0;  // element index; meaningful when !ok and the sizes agree
  std::string detail;              // names the tensor and the first mismatch, or both sizes
};

// Bit-exact: payload rows and FP8 scales are moved, never recomputed.
Comparison compare_bytes(const char* what, std::span<const uint8_t> expected, std::span<const uint8_t> got);
Comparison compare_floats_exact(const char* what, std::span<const float> expected,
                                std::span<const float> got);
Comparison compare_ints_exact(const char* what, std::span<const int64_t> expected,
                              std::span<const int64_t> got);
// |got - expected| <= atol + rtol * |expected|; NaN never matches (a poisoned element fails).
Comparison compare_floats_close(const char* what, std::span<const float> expected, std::span<const float> got,
                                float rtol, float atol);
// BF16 values (bit patterns), with the tolerance above. kBf16Rtol is one BF16 step (8 mantissa
// bits) relative to the value.
inline constexpr float kBf16Rtol = 1.0f / 128.0f;
inline constexpr float kBf16Atol = 1e-6f;
Comparison compare_bf16(const char* what, std::span<const uint16_t> expected, std::span<const uint16_t> got,
                        float rtol = kBf16Rtol, float atol = kBf16Atol);

// The verdict of one op's data check: the detail of every failed comparison; empty when all matched.
struct Verdict {
  std::vector<std::string> failures;

  bool ok() const { return failures.empty(); }
  void add(const Comparison& c) {
    if (!c.ok) failures.push_back(c.detail);
  }
  void fail(std::string why) { failures.push_back(std::move(why)); }
};

// Prints every failure of `verdict` to stderr as "epcomm-bench: rank R: check failed: ..." and
// returns verdict.ok().
bool report_verdict(const Verdict& verdict, int rank);

}  // namespace epcomm::bench
