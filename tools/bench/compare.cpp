#include "bench/compare.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "reference/reference.hpp"

namespace epcomm::bench {

namespace {

// Counts the mismatches of `equal(i)` over [0, count) and describes the first with `describe(i)`.
template <typename Equal, typename Describe>
Comparison compare(const char* what, std::size_t count, Equal equal, Describe describe) {
  Comparison c;
  for (std::size_t i = 0; i < count; ++i) {
    if (equal(i)) continue;
    if (c.ok) {
      c.ok = false;
      c.first_mismatch = i;
    }
    ++c.num_mismatches;
  }
  if (!c.ok) {
    std::ostringstream os;
    os << what << ": " << c.num_mismatches << " of " << count << " elements differ; first at "
       << c.first_mismatch << ": ";
    describe(os, c.first_mismatch);
    c.detail = os.str();
  }
  return c;
}

uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

}  // namespace

Comparison compare_bytes(const char* what, const uint8_t* expected, const uint8_t* got, std::size_t count) {
  if (std::memcmp(expected, got, count) == 0) return {};
  return compare(
      what, count, [&](std::size_t i) { return expected[i] == got[i]; },
      [&](std::ostream& os, std::size_t i) {
        os << "expected 0x" << std::hex << int{expected[i]} << ", got 0x" << int{got[i]} << std::dec;
      });
}

Comparison compare_floats_exact(const char* what, const float* expected, const float* got,
                                std::size_t count) {
  return compare(
      what, count, [&](std::size_t i) { return bits_of(expected[i]) == bits_of(got[i]); },
      [&](std::ostream& os, std::size_t i) { os << "expected " << expected[i] << ", got " << got[i]; });
}

Comparison compare_bf16(const char* what, const uint16_t* expected, const uint16_t* got, std::size_t count,
                        float rtol, float atol) {
  return compare(
      what, count,
      [&](std::size_t i) {
        const float e = ref::bf16_to_float(expected[i]);
        const float g = ref::bf16_to_float(got[i]);
        return std::fabs(g - e) <= atol + rtol * std::fabs(e);  // false for NaN
      },
      [&](std::ostream& os, std::size_t i) {
        os << "expected " << ref::bf16_to_float(expected[i]) << ", got " << ref::bf16_to_float(got[i]);
      });
}

}  // namespace epcomm::bench
