#include "bench/compare.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "epcomm/reference.hpp"

namespace epcomm::bench {

namespace {

// Checks the sizes, then counts the mismatches of `equal(i)` over the reference's elements and
// describes the first with `describe(os, i)`.
template <typename Equal, typename Describe>
Comparison compare(const char* what, std::size_t expected_count, std::size_t got_count, Equal equal,
                   Describe describe) {
  Comparison c;
  if (got_count != expected_count) {
    c.ok = false;
    c.num_mismatches = expected_count > got_count ? expected_count - got_count : got_count - expected_count;
    std::ostringstream os;
    os << what << ": " << got_count << " elements, the reference has " << expected_count;
    c.detail = os.str();
    return c;
  }
  for (std::size_t i = 0; i < expected_count; ++i) {
    if (equal(i)) continue;
    if (c.ok) {
      c.ok = false;
      c.first_mismatch = i;
    }
    ++c.num_mismatches;
  }
  if (!c.ok) {
    std::ostringstream os;
    os << what << ": " << c.num_mismatches << " of " << expected_count << " elements differ; first at "
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

bool close(float expected, float got, float rtol, float atol) {
  return std::fabs(got - expected) <= atol + rtol * std::fabs(expected);  // false for NaN
}

}  // namespace

Comparison compare_bytes(const char* what, std::span<const uint8_t> expected, std::span<const uint8_t> got) {
  if (expected.size() == got.size() &&
      (expected.empty() || std::memcmp(expected.data(), got.data(), got.size()) == 0))
    return {};
  return compare(
      what, expected.size(), got.size(), [&](std::size_t i) { return expected[i] == got[i]; },
      [&](std::ostream& os, std::size_t i) {
        os << "expected 0x" << std::hex << int{expected[i]} << ", got 0x" << int{got[i]} << std::dec;
      });
}

Comparison compare_floats_exact(const char* what, std::span<const float> expected,
                                std::span<const float> got) {
  return compare(
      what, expected.size(), got.size(),
      [&](std::size_t i) { return bits_of(expected[i]) == bits_of(got[i]); },
      [&](std::ostream& os, std::size_t i) { os << "expected " << expected[i] << ", got " << got[i]; });
}

Comparison compare_ints_exact(const char* what, std::span<const int64_t> expected,
                              std::span<const int64_t> got) {
  return compare(
      what, expected.size(), got.size(), [&](std::size_t i) { return expected[i] == got[i]; },
      [&](std::ostream& os, std::size_t i) { os << "expected " << expected[i] << ", got " << got[i]; });
}

Comparison compare_floats_close(const char* what, std::span<const float> expected, std::span<const float> got,
                                float rtol, float atol) {
  return compare(
      what, expected.size(), got.size(),
      [&](std::size_t i) { return close(expected[i], got[i], rtol, atol); },
      [&](std::ostream& os, std::size_t i) { os << "expected " << expected[i] << ", got " << got[i]; });
}

Comparison compare_bf16(const char* what, std::span<const uint16_t> expected, std::span<const uint16_t> got,
                        float rtol, float atol) {
  return compare(
      what, expected.size(), got.size(),
      [&](std::size_t i) {
        return close(ref::bf16_to_float(expected[i]), ref::bf16_to_float(got[i]), rtol, atol);
      },
      [&](std::ostream& os, std::size_t i) {
        os << "expected " << ref::bf16_to_float(expected[i]) << ", got " << ref::bf16_to_float(got[i]);
      });
}

bool report_verdict(const Verdict& verdict, int rank) {
  for (const std::string& why : verdict.failures)
    std::fprintf(stderr, "epcomm-bench: rank %d: check failed: %s\n", rank, why.c_str());
  return verdict.ok();
}

}  // namespace epcomm::bench
