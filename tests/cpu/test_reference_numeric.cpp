// Tests of src/reference/numeric.cpp: BF16 and E4M3 conversions, UE8M0, the LL FP8 row cast.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "epcomm/reference.hpp"
#include "test_reference_common.hpp"

namespace epcomm::ref {
namespace {

using testing::expect_invalid_argument;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- BF16 ---------------------------------------------------------------------------------------

TEST(ReferenceBf16, HandValues) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(kInf), 0x7f80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xff80);
  // BF16 keeps 7 mantissa bits: 1 + 2^-8 is the tie between 1 (0x3f80, even) and 1 + 2^-7 (odd).
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(float_to_bf16(std::nextafter(1.0f + 0x1p-8f, 2.0f)), 0x3f81);
  // 1 + 3*2^-8 is the tie between 0x3f81 (odd) and 0x3f82 (even).
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(float_to_bf16(std::nextafter(1.0f + 3 * 0x1p-8f, 0.0f)), 0x3f81);
  // The largest float rounds up past the largest BF16 (0x7f7f) to infinity.
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  // Any NaN becomes CUDA's canonical 0x7fff (a quiet NaN).
  EXPECT_EQ(float_to_bf16(kNaN), 0x7fff);
  EXPECT_EQ(float_to_bf16(-kNaN), 0x7fff);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc0a0), -5.0f);
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7fff)));
}

TEST(ReferenceBf16, EveryNonNaNPatternRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const float value = bf16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_bf16(value), bits) << std::hex << bits;
  }
}

// ---- E4M3 ---------------------------------------------------------------------------------------

TEST(ReferenceE4m3, HandValues) {
  // S.EEEE.MMM, bias 7: 0x38 = 0.0111.000 = 2^0; 0x01 = smallest subnormal 2^-9; 0x08 = 2^-6, the
  // smallest normal; 0x7e = 0.1111.110 = 1.75 * 2^8 = 448; 0x7f and 0xff are NaN.
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_float(0xb8), -1.0f);
  EXPECT_EQ(e4m3_to_float(0x01), 0x1p-9f);
  EXPECT_EQ(e4m3_to_float(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(e4m3_to_float(0x08), 0x1p-6f);
  EXPECT_EQ(e4m3_to_float(0x5d), 26.0f);  // 0.1011.101 = 1.625 * 2^4
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_float(0xfe), -448.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xff)));

  EXPECT_EQ(float_to_e4m3(1.0f), 0x38);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(26.95f), 0x5d);    // spacing 2 in [16, 32): 26.95 is nearer 26 than 28
  EXPECT_EQ(float_to_e4m3(27.0f), 0x5e);     // tie between 26 (0x5d, odd) and 28 (0x5e, even)
  EXPECT_EQ(float_to_e4m3(0x1p-10f), 0x00);  // tie between 0 (even) and 2^-9
  EXPECT_EQ(float_to_e4m3(std::nextafter(0x1p-10f, 1.0f)), 0x01);
  EXPECT_EQ(float_to_e4m3(1e-30f), 0x00);
  EXPECT_EQ(float_to_e4m3(-1e-30f), 0x80);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

TEST(ReferenceE4m3, EveryCodeRoundTrips) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;  // NaN
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(static_cast<uint8_t>(code))), code) << std::hex << code;
  }
}

// Between consecutive codes c and c+1 of one sign: the midpoint goes to the even code, anything
// just above it to c+1, just below to c. Covers subnormals, the subnormal/normal boundary and
// every binade.
TEST(ReferenceE4m3, MidpointsRoundToEven) {
  for (int code = 0; code < 0x7e; ++code) {
    for (const uint8_t sign : {uint8_t{0x00}, uint8_t{0x80}}) {
      const uint8_t lo = static_cast<uint8_t>(sign | code);
      const uint8_t hi = static_cast<uint8_t>(sign | (code + 1));
      const float lo_value = e4m3_to_float(lo);
      const float hi_value = e4m3_to_float(hi);
      const float mid = (lo_value + hi_value) / 2;  // exact: both are short binary fractions
      const uint8_t even = (code % 2 == 0) ? lo : hi;
      EXPECT_EQ(float_to_e4m3(mid), even) << "mid of " << std::hex << int{lo};
      EXPECT_EQ(float_to_e4m3(std::nextafter(mid, hi_value)), hi) << "above mid of " << std::hex << int{lo};
      EXPECT_EQ(float_to_e4m3(std::nextafter(mid, lo_value)), lo) << "below mid of " << std::hex << int{lo};
    }
  }
}

TEST(ReferenceE4m3, SaturatesAndMapsNaN) {
  // 464 would round to 480, which E4M3 lacks: SATFINITE gives 448 for everything from 448 on.
  for (const float value :
       {448.0f, 449.0f, 463.99f, 464.0f, 480.0f, 1e6f, std::numeric_limits<float>::max(), kInf}) {
    EXPECT_EQ(float_to_e4m3(value), 0x7e) << value;
    EXPECT_EQ(float_to_e4m3(-value), 0xfe) << -value;
  }
  EXPECT_EQ(float_to_e4m3(std::nextafter(448.0f, 0.0f)), 0x7e);
  EXPECT_EQ(float_to_e4m3(kNaN), 0x7f);
  EXPECT_EQ(float_to_e4m3(-kNaN), 0x7f);
}

// Monotone: every float from 0 to 512 maps to a code no smaller than the previous one's, and the
// code's value is the nearest E4M3 value (checked by distance). Samples 2^20 floats in the range.
TEST(ReferenceE4m3, NearestOnDenseSweep) {
  const uint32_t first = 0;
  const uint32_t last = std::bit_cast<uint32_t>(512.0f);
  const uint32_t step = (last - first) >> 20;
  for (uint32_t bits = first; bits <= last; bits += step) {
    const float value = std::bit_cast<float>(bits);
    const uint8_t code = float_to_e4m3(value);
    const float error = std::fabs(e4m3_to_float(code) - value);
    if (value >= 448.0f) {
      EXPECT_EQ(code, 0x7e);
      continue;
    }
    if (code > 0) {
      EXPECT_LE(error, std::fabs(e4m3_to_float(code - 1) - value)) << value;
    }
    if (code < 0x7e) {
      EXPECT_LE(error, std::fabs(e4m3_to_float(code + 1) - value)) << value;
    }
  }
}

// ---- UE8M0 and the LL FP8 row cast --------------------------------------------------------------

TEST(ReferenceUe8m0, BiasedExponent) {
  EXPECT_EQ(ue8m0_of(1.0f), 127);
  EXPECT_EQ(ue8m0_of(0x1p-7f), 120);
  EXPECT_EQ(ue8m0_of(0.5f), 126);
  EXPECT_EQ(ue8m0_of(0x1p10f), 137);
}

// One row of 256 channels, two blocks:
//   block 0: x[0] = -3.5, the other 127 channels 1.0. amax = 3.5.
//     plain:  scale_inv = 3.5 / 448 = 2^-7 exactly, scale = 448 / 3.5 = 128.
//             q(-3.5) = e4m3(-448) = 0xfe; q(1.0) = e4m3(128) = 0.1110.000 = 0x70.
//     round:  3.5/448 = 2^-7 is already a power of two, so scale_inv stays 2^-7 (a float log2
//             that lands one ulp high would give 2^-6 here); same q; UE8M0 byte 127 - 7 = 0x78.
//   block 1: x[128] = 5.0, the other 127 channels 0.3 (BF16 0.30078125). amax = 5.
//     plain:  scale_inv = 5 / 448 (float), scale = 448 / 5 = 89.6 (float).
//             q(5.0) = e4m3(5 * 89.6 ~ 448) = 0x7e; q(0.30078125) = e4m3(26.95) = 26 = 0x5d.
//     round:  5/448 = 0.01116 lies in (2^-7, 2^-6], so scale_inv = 2^-6, scale = 64, UE8M0 0x79.
//             q(5.0) = e4m3(320) = 1.25 * 2^8 = 0.1111.010 = 0x7a;
//             q(0.30078125) = e4m3(19.25): spacing 2 in [16, 32), nearest 20 = 1.25 * 2^4 = 0x5a.
std::vector<uint16_t> hand_row() {
  std::vector<float> row(256, 1.0f);
  row[0] = -3.5f;
  for (int c = 128; c < 256; ++c) row[c] = 0.3f;
  row[128] = 5.0f;
  return testing::bf16_of(row);
}

TEST(ReferenceLlCast, HandRowPlainScale) {
  const std::vector<uint16_t> row = hand_row();
  std::vector<uint8_t> q(256);
  std::vector<float> scale_inv(2);
  ll_cast_row_fp8(row.data(), 256, LlOptions{.use_fp8 = true}, q.data(), scale_inv.data());
  EXPECT_EQ(scale_inv[0], 0x1p-7f);
  EXPECT_EQ(scale_inv[1], 5.0f / 448.0f);
  EXPECT_EQ(q[0], 0xfe);
  for (int c = 1; c < 128; ++c) ASSERT_EQ(q[c], 0x70) << c;
  EXPECT_EQ(q[128], 0x7e);
  for (int c = 129; c < 256; ++c) ASSERT_EQ(q[c], 0x5d) << c;
}

TEST(ReferenceLlCast, HandRowRoundScale) {
  const std::vector<uint16_t> row = hand_row();
  std::vector<uint8_t> q(256);
  std::vector<float> scale_inv(2);
  ll_cast_row_fp8(row.data(), 256, LlOptions{.use_fp8 = true, .round_scale = true, .use_ue8m0 = true},
                  q.data(), scale_inv.data());
  EXPECT_EQ(scale_inv[0], 0x1p-7f);
  EXPECT_EQ(scale_inv[1], 0x1p-6f);
  EXPECT_EQ(ue8m0_of(scale_inv[0]), 0x78);
  EXPECT_EQ(ue8m0_of(scale_inv[1]), 0x79);
  EXPECT_EQ(q[0], 0xfe);
  for (int c = 1; c < 128; ++c) ASSERT_EQ(q[c], 0x70) << c;
  EXPECT_EQ(q[128], 0x7a);
  for (int c = 129; c < 256; ++c) ASSERT_EQ(q[c], 0x5a) << c;
}

// An all-zero block uses the amax floor 1e-4: scale_inv = 1e-4 / 448, every code 0.
TEST(ReferenceLlCast, ZeroBlockUsesAmaxFloor) {
  const std::vector<uint16_t> row(128, 0);
  std::vector<uint8_t> q(128, 0xaa);
  float scale_inv = 0;
  ll_cast_row_fp8(row.data(), 128, LlOptions{}, q.data(), &scale_inv);
  EXPECT_EQ(scale_inv, 1e-4f / 448.0f);
  for (const uint8_t code : q) ASSERT_EQ(code, 0x00);
}

// Pins the float operations of the plain cast, q = e4m3(x * fl(448 / amax)), on two near-ties
// where the other natural formulas give another code (a GPU kernel must match this one):
//   amax = 1.078125 (BF16 0x3f8a), x = 0.2021484375 (0x3e4f): exactly x * 448 / amax = 84, the tie
//     of 80 (0x6a, even) and 88 (0x6b). x * fl(448/amax) falls on 84 or below -> 0x6a, while
//     x * (1 / fl(amax/448)) lands above -> 0x6b.
//   amax = 1.53125 (0x3fc4), x = 0.042724609375 (0x3d2f): exactly 12.5, the tie of 12 (0x54, even)
//     and 13 (0x55). x * fl(448/amax) lands above -> 0x55, while x / fl(amax/448) gives 0x54.
TEST(ReferenceLlCast, PinsTheFloatOperations) {
  struct Case {
    uint16_t amax, x;
    uint8_t expected;
  };
  for (const Case& c : {Case{0x3f8a, 0x3e4f, 0x6a}, Case{0x3fc4, 0x3d2f, 0x55}}) {
    std::vector<uint16_t> row(128, 0);
    row[0] = c.amax;
    row[1] = c.x;
    std::vector<uint8_t> q(128);
    float scale_inv = 0;
    ll_cast_row_fp8(row.data(), 128, LlOptions{}, q.data(), &scale_inv);
    EXPECT_EQ(q[0], 0x7e);
    EXPECT_EQ(q[1], c.expected) << std::hex << c.x;
    EXPECT_EQ(scale_inv, bf16_to_float(c.amax) / 448.0f);
  }
}

// Round trip on random rows: |e4m3_to_float(q) * scale_inv - x| <= 2^-4 |x| + 2^-9 scale_inv.
// Why: x * scale lands in [-448, 448] (up to float rounding, and anything past 448 saturates to a
// value at most an ulp away). There E4M3 rounding to nearest errs by at most half a step: 2^-4 of
// the value for normals (3 mantissa bits), 2^-10 absolute for subnormals. Scaling back by
// scale_inv ~= 1/scale turns these into 2^-4 |x| and 2^-10 scale_inv; the 2^-9 leaves room for the
// float roundings of scale, scale_inv and the products (relative 2^-23 each).
TEST(ReferenceLlCast, RandomRoundTripWithinFp8Tolerance) {
  std::mt19937 rng(1234);
  for (const bool round_scale : {false, true}) {
    for (const float stddev : {1e-3f, 1.0f, 300.0f}) {
      const int64_t hidden = 1024;
      const std::vector<uint16_t> row = testing::random_normal_bf16(rng, hidden, stddev);
      std::vector<uint8_t> q(hidden);
      std::vector<float> scale_inv(hidden / kFp8BlockSize);
      ll_cast_row_fp8(row.data(), hidden, LlOptions{.round_scale = round_scale}, q.data(), scale_inv.data());
      for (int64_t c = 0; c < hidden; ++c) {
        const float x = bf16_to_float(row[c]);
        const float s = scale_inv[c / kFp8BlockSize];
        const float dequant = e4m3_to_float(q[c]) * s;
        ASSERT_LE(std::fabs(dequant - x), 0x1p-4f * std::fabs(x) + 0x1p-9f * s)
            << "c=" << c << " x=" << x << " round_scale=" << round_scale;
      }
      if (round_scale) {
        for (const float s : scale_inv) EXPECT_EQ(s, std::exp2(std::round(std::log2(s)))) << "power of two";
      }
    }
  }
}

TEST(ReferenceLlCast, RejectsBadArguments) {
  std::vector<uint16_t> row(256, 0);
  std::vector<uint8_t> q(256);
  std::vector<float> scale_inv(2);
  expect_invalid_argument([&] { ll_cast_row_fp8(row.data(), 200, LlOptions{}, q.data(), scale_inv.data()); },
                          "hidden");
  expect_invalid_argument(
      [&] { ll_cast_row_fp8(row.data(), 256, LlOptions{.use_ue8m0 = true}, q.data(), scale_inv.data()); },
      "use_ue8m0");
}

}  // namespace
}  // namespace epcomm::ref
