// The poison of the benchmark's checked call (bench/runner.hpp): before that call, every output it
// must write is overwritten with a pattern no correct output equals, so an element the call fails
// to write can only mismatch.
//
// The byte at address a is 0x7F when a % 4 == 3, else 0xFF: the little-endian word 0x7FFFFFFF at
// every 4-byte boundary, whatever view of the memory is poisoned. Read as
//   float32 0x7FFFFFFF, bfloat16 0xFFFF / 0x7FFF, float8 e4m3 0xFF / 0x7F: NaN (comparisons never
//     match NaN; the finite-saturating FP8 cast never produces it);
//   int32 0x7FFFFFFF, int64 0x7FFFFFFF7FFFFFFF: far outside any index or count, and not -1.
// tests/cpu/test_bench_poison.cpp decodes it as each dtype.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace epcomm::bench {

inline constexpr uint32_t kPoisonWord = 0x7FFFFFFFu;

constexpr uint8_t poison_byte(std::uintptr_t address) {
  return static_cast<uint8_t>(kPoisonWord >> (8 * (address % 4)));
}

// Bytes from a view's first element to one past its last (shape and non-negative strides in
// elements); 0 when any dimension is empty. What poisoning a strided view must cover.
std::size_t view_span_bytes(std::span<const int64_t> shape, std::span<const int64_t> stride,
                            std::size_t element_bytes);

}  // namespace epcomm::bench
