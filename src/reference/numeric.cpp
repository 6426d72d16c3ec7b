// Scalar numerics of the reference: BF16 and E4M3 conversions, the LL FP8 row cast, UE8M0.
// Every function here must agree bit for bit with the CUDA intrinsic named in its comment, because
// GPU tests compare payloads bit-exactly against the reference.
#include <bit>
#include <cmath>
#include <cstdint>

#include "core/check.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::ref {

namespace {

constexpr uint32_t kFloatSignMask = 0x80000000u;
constexpr uint32_t kFloatAbsMask = 0x7fffffffu;
constexpr uint32_t kFloatExpMask = 0x7f800000u;
constexpr uint32_t kFloatMantMask = 0x007fffffu;
constexpr int kFloatMantBits = 23;
constexpr int kFloatExpBias = 127;

// CUDA's canonical BF16 NaN (what cvt.rn.bf16.f32 and __float2bfloat16_rn return for any NaN).
constexpr uint16_t kBf16CanonicalNaN = 0x7fff;

// E4M3 (OCP FP8, "fn" variant): 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinity,
// S.1111.111 is NaN, S.1111.110 = 448 is the largest finite magnitude.
constexpr int kE4m3ExpBias = 7;
constexpr int kE4m3MantBits = 3;
constexpr int kE4m3MinNormalExp = 1 - kE4m3ExpBias;  // -6: exponent of the smallest normal, 2^-6
constexpr uint8_t kE4m3MaxFiniteCode = 0x7e;         // 448
constexpr uint8_t kE4m3NaNCode = 0x7f;

// Rounds a non-negative float that holds an integer plus a fraction to the nearest integer, ties
// to even. Exact: every step is exact for the small magnitudes (< 2^5) used here.
float round_half_even(float value) {
  const float floor_value = std::floor(value);
  const float fraction = value - floor_value;
  if (fraction > 0.5f) return floor_value + 1.0f;
  if (fraction < 0.5f) return floor_value;
  return std::fmod(floor_value, 2.0f) == 0.0f ? floor_value : floor_value + 1.0f;
}

}  // namespace

float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate. A carry out
// of the mantissa bumps the exponent, which is the correct rounding (up to infinity for the largest
// finite floats). NaN becomes CUDA's canonical 0x7fff.
uint16_t float_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & kFloatAbsMask) > kFloatExpMask) return kBf16CanonicalNaN;
  const uint32_t lowest_kept_bit = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lowest_kept_bit) >> 16);
}

float e4m3_to_float(uint8_t bits) {
  const bool negative = (bits & 0x80u) != 0;
  const int exponent_field = (bits >> kE4m3MantBits) & 0xf;
  const int mantissa = bits & 0x7;
  float magnitude;
  if ((bits & 0x7fu) == kE4m3NaNCode) {
    magnitude = std::nanf("");
  } else if (exponent_field == 0) {  // subnormal: mantissa * 2^-9
    magnitude = std::ldexp(static_cast<float>(mantissa), kE4m3MinNormalExp - kE4m3MantBits);
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent_field - kE4m3ExpBias - kE4m3MantBits);
  }
  return negative ? -magnitude : magnitude;
}

// __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3), with exact float arithmetic:
//   - NaN -> 0x7f; |v| >= 448 (infinity included) -> 448 with the sign of v (SATFINITE).
//   - Otherwise let e = max(floor(log2|v|), -6) be the exponent of the E4M3 binade holding |v|
//     (subnormals share the binade of 2^-6). The spacing there is 2^(e-3), so m = |v| / 2^(e-3) is
//     exact (a power-of-two scaling) and lies in [0, 16). Round m to the nearest integer, ties to
//     even. The code is ((e + 6) << 3) + m: for normals m in [8, 16] puts the implicit bit into the
//     exponent field (m == 16 carries into the next binade, as rounding should), for subnormals
//     (e == -6, m in [0, 8]) the code is m itself, and m == 8 is the smallest normal 2^-6.
//   - A code above 0x7e can only come from |v| >= 448, handled above; the clamp is a guard.
uint8_t float_to_e4m3(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint8_t sign = (bits & kFloatSignMask) != 0 ? uint8_t{0x80} : uint8_t{0x00};
  const uint32_t abs_bits = bits & kFloatAbsMask;
  if (abs_bits > kFloatExpMask) return kE4m3NaNCode;
  const float magnitude = std::bit_cast<float>(abs_bits);
  if (magnitude >= kFp8Max) return sign | kE4m3MaxFiniteCode;

  // Float subnormals (exponent field 0) are far below the E4M3 range; any exponent < -6 will do.
  const int float_exp_field = static_cast<int>(abs_bits >> kFloatMantBits);
  const int float_exp = float_exp_field == 0 ? -kFloatExpBias : float_exp_field - kFloatExpBias;
  const int binade_exp = float_exp < kE4m3MinNormalExp ? kE4m3MinNormalExp : float_exp;
  const float steps = round_half_even(std::ldexp(magnitude, kE4m3MantBits - binade_exp));
  int code = ((binade_exp - kE4m3MinNormalExp) << kE4m3MantBits) + static_cast<int>(steps);
  if (code > kE4m3MaxFiniteCode) code = kE4m3MaxFiniteCode;
  return static_cast<uint8_t>(sign | code);
}

// The biased exponent byte of the float (bits 23..30). For a power of two 2^p this is p + 127.
uint8_t ue8m0_of(float scale_inv) {
  return static_cast<uint8_t>((std::bit_cast<uint32_t>(scale_inv) & kFloatExpMask) >> kFloatMantBits);
}

namespace {

// 2^ceil(log2(value)) for a positive finite normal float, exactly: a power of two is its own
// ceiling; anything else goes to the next power of two (its exponent field plus one).
float round_up_to_power_of_two(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & kFloatMantMask) == 0) return value;
  return std::bit_cast<float>((bits & kFloatExpMask) + (1u << kFloatMantBits));
}

}  // namespace

// SPEC "Low-latency dispatch", FP8 cast. See reference.hpp for the exact float operations.
void ll_cast_row_fp8(const uint16_t* x, int64_t hidden, const LlOptions& options, uint8_t* q,
                     float* scale_inv) {
  EPCOMM_CHECK_ARG(hidden > 0 && hidden % kFp8BlockSize == 0, "hidden: expected a positive multiple of ",
                   kFp8BlockSize, " for the FP8 cast, got ", hidden);
  EPCOMM_CHECK_ARG(!options.use_ue8m0 || options.round_scale,
                   "use_ue8m0: expected round_scale=true with use_ue8m0=true, got round_scale=false");
  EPCOMM_CHECK_ARG(x != nullptr && q != nullptr && scale_inv != nullptr,
                   "x, q, scale_inv: expected non-null pointers");
  for (int64_t block = 0; block < hidden / kFp8BlockSize; ++block) {
    const uint16_t* x_block = x + block * kFp8BlockSize;
    // amax = max(max |x|, 1e-4), with fmax semantics (a NaN element is ignored).
    float amax = kFp8AmaxFloor;
    for (int c = 0; c < kFp8BlockSize; ++c) amax = std::fmax(amax, std::fabs(bf16_to_float(x_block[c])));
    float block_scale_inv = amax / kFp8Max;  // IEEE division, rounded to nearest
    float scale = kFp8Max / amax;            // IEEE division, rounded to nearest
    if (options.round_scale) {
      block_scale_inv = round_up_to_power_of_two(block_scale_inv);
      scale = 1.0f / block_scale_inv;  // exact: the reciprocal of a power of two
    }
    scale_inv[block] = block_scale_inv;
    for (int c = 0; c < kFp8BlockSize; ++c) {
      q[block * kFp8BlockSize + c] = float_to_e4m3(bf16_to_float(x_block[c]) * scale);
    }
  }
}

}  // namespace epcomm::ref
