// The GPU tests' comparisons with the CPU reference and their output poison, as host functions
// with no CUDA, so that tests/cpu/test_gpu_checks.cpp can feed them never-written (poisoned)
// outputs and show that they fail.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "intranode/ht_layout.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::test {

// NOTE: the poison is a value no correct output equals. Every 16-bit half-word of a poisoned
// output is 0x7fff (bytes ff 7f): a NaN as FP8 E4M3 (either byte), BF16, FP16, float32 and
// float64; 2147450879 as int32 and about 9.2e18 as int64, beyond any index or count; bools that are
// neither 0 nor 1. A missed write of any dtype therefore fails an exact or a NaN-aware compare.
inline constexpr std::uint16_t kPoison16 = 0x7fff;

// `bytes` bytes of poison, the pattern starting at byte 0 (an odd tail ends in 0xff).
inline std::vector<std::uint8_t> poison_bytes(std::size_t bytes) {
  std::vector<std::uint8_t> v(bytes);
  for (std::size_t i = 0; i < bytes; ++i) v[i] = i % 2 == 0 ? kPoison16 & 0xff : kPoison16 >> 8;
  return v;
}

// What a T in poisoned memory reads as.
template <typename T>
T poisoned() {
  const std::vector<std::uint8_t> bytes = poison_bytes(sizeof(T));
  T value;
  std::memcpy(&value, bytes.data(), sizeof(T));
  return value;
}

// How many of the compared elements differ, and the first that does (`count` when none).
struct Mismatches {
  std::size_t count = 0;
  std::size_t first = 0;
};

// The first `count` elements compared bit for bit (dispatch payloads, scales, indices: moved, never
// computed). Returns no mismatch only when both hold `count` elements; check sizes first.
template <typename T>
Mismatches bitwise_mismatches(const std::vector<T>& got, const std::vector<T>& want, std::size_t count) {
  Mismatches m{0, count};
  for (std::size_t i = 0; i < count; ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0 && m.count++ == 0) m.first = i;
  return m;
}

// A combined value is close when |got - want| <= rel * |want| + abs. NaN-aware: a NaN where the
// reference is a number is never close (a plain `|got - want| > tol` test lets NaN through).
inline bool close_to(float got, float want, float rel, float abs) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= rel * std::fabs(want) + abs;  // false for a NaN `got`
}

// Elementwise close_to over equal-sized float32 vectors.
inline Mismatches f32_off(const std::vector<float>& got, const std::vector<float>& want, float rel,
                          float abs) {
  Mismatches m{0, got.size()};
  for (std::size_t i = 0; i < got.size() && i < want.size(); ++i)
    if (!close_to(got[i], want[i], rel, abs) && m.count++ == 0) m.first = i;
  return m;
}

// Elementwise close_to over equal-sized BF16 vectors (their 16-bit patterns), widened to float.
inline Mismatches bf16_off(const std::vector<std::uint16_t>& got, const std::vector<std::uint16_t>& want,
                           float rel, float abs) {
  Mismatches m{0, got.size()};
  for (std::size_t i = 0; i < got.size() && i < want.size(); ++i)
    if (!close_to(ref::bf16_to_float(got[i]), ref::bf16_to_float(want[i]), rel, abs) && m.count++ == 0)
      m.first = i;
  return m;
}

// Combine's tolerances (ht_run.cpp): x is summed in float32 and rounded to BF16 once, weights stay
// float32 sums in a possibly different order.
inline constexpr float kCombineXRel = 1e-2f, kCombineXAbs = 1e-2f;
inline constexpr float kCombineWeightRel = 1e-5f, kCombineWeightAbs = 1e-6f;

// Whether the copy-engine dispatch takes a rank's rows straight from x, for its own rank and for
// any peer: the library's rule (straight_copies) on the reference layout's tokens per rank of that
// rank's routing. Holds for any number of ranks.
struct StraightExpected {
  bool own = false, peer = false;
};
inline StraightExpected straight_expected(const std::vector<std::int32_t>& num_tokens_per_rank,
                                          std::int64_t num_tokens, int rank_idx) {
  StraightExpected e;
  for (std::size_t r = 0; r < num_tokens_per_rank.size(); ++r)
    if (straight_copies(num_tokens_per_rank[r], num_tokens))
      (static_cast<int>(r) == rank_idx ? e.own : e.peer) = true;
  return e;
}

}  // namespace epcomm::test
