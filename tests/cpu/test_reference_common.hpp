// Helpers shared by the CPU reference tests: deterministic random routing and payloads, byte
// views of BF16 rows, and an assertion for epcomm::Error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::ref::testing {

// Routing shapes for property and pressure tests.
struct RoutingOptions {
  double pinned_fraction = 0.0;     // tokens whose experts all come from rank 0 (skew)
  double masked_fraction = 0.0;     // slots set to -1
  double duplicate_fraction = 0.0;  // tokens whose slot 1 repeats slot 0's expert
  bool one_token_nowhere = false;   // token 0 has every slot -1
};

// [num_tokens, num_topk]: distinct experts per token (like torch.topk), then the options applied.
inline std::vector<int64_t> random_topk(std::mt19937& rng, const Geometry& geometry, int64_t num_tokens,
                                        int num_topk, const RoutingOptions& options) {
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_int_distribution<int> any_expert(0, geometry.num_experts - 1);
  std::uniform_int_distribution<int> rank0_expert(0, geometry.num_local_experts() - 1);
  std::vector<int64_t> topk_idx(num_tokens * num_topk, -1);
  for (int64_t t = 0; t < num_tokens; ++t) {
    int64_t* row = topk_idx.data() + t * num_topk;
    const bool pinned = coin(rng) < options.pinned_fraction && geometry.num_local_experts() >= num_topk;
    for (int k = 0; k < num_topk; ++k) {
      int64_t expert_idx;
      bool repeated;
      do {  // distinct experts within the row
        expert_idx = pinned ? rank0_expert(rng) : any_expert(rng);
        repeated = false;
        for (int j = 0; j < k; ++j) repeated = repeated || row[j] == expert_idx;
      } while (repeated);
      row[k] = expert_idx;
    }
    if (num_topk >= 2 && coin(rng) < options.duplicate_fraction) row[1] = row[0];
    for (int k = 0; k < num_topk; ++k) {
      if (coin(rng) < options.masked_fraction) row[k] = -1;
    }
  }
  if (options.one_token_nowhere && num_tokens > 0) {
    for (int k = 0; k < num_topk; ++k) topk_idx[k] = -1;
  }
  return topk_idx;
}

// Non-zero BF16 values m * 2^p with |m| in [1, 15] and p in [-4, 4]: a sum of up to 16 of them with
// the same m and p is again exact in BF16 (|16 m| < 256 needs at most 8 significant bits).
inline std::vector<uint16_t> random_exact_bf16(std::mt19937& rng, size_t count) {
  std::uniform_int_distribution<int> mantissa(1, 15);
  std::uniform_int_distribution<int> exponent(-4, 4);
  std::uniform_int_distribution<int> sign(0, 1);
  std::vector<uint16_t> values(count);
  for (uint16_t& v : values) {
    const float value = std::ldexp(static_cast<float>(mantissa(rng)), exponent(rng));
    v = float_to_bf16(sign(rng) != 0 ? -value : value);
  }
  return values;
}

// Non-zero BF16 values with full mantissas, normally distributed (for FP8 casts).
inline std::vector<uint16_t> random_normal_bf16(std::mt19937& rng, size_t count, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<uint16_t> values(count);
  for (uint16_t& v : values) {
    uint16_t bits;
    do bits = float_to_bf16(normal(rng));
    while ((bits & 0x7fff) == 0);
    v = bits;
  }
  return values;
}

inline std::vector<float> random_weights(std::mt19937& rng, size_t count) {
  std::uniform_real_distribution<float> weight(0.0625f, 1.0f);
  std::vector<float> weights(count);
  for (float& w : weights) w = weight(rng);
  return weights;
}

// BF16 values as the bytes a GPU holds (little-endian), and back.
inline std::vector<uint8_t> to_bytes(const std::vector<uint16_t>& values) {
  std::vector<uint8_t> bytes(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    bytes[2 * i] = static_cast<uint8_t>(values[i] & 0xff);
    bytes[2 * i + 1] = static_cast<uint8_t>(values[i] >> 8);
  }
  return bytes;
}

inline std::vector<uint16_t> from_bytes(const std::vector<uint8_t>& bytes) {
  std::vector<uint16_t> values(bytes.size() / 2);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
  }
  return values;
}

inline std::vector<uint16_t> bf16_of(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = float_to_bf16(values[i]);
  return bits;
}

inline std::vector<float> floats_of(const std::vector<uint16_t>& bits) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = bf16_to_float(bits[i]);
  return values;
}

// Runs `call`, expecting epcomm::Error of category kInvalidArgument whose message contains `needle`.
template <typename Call>
void expect_invalid_argument(Call&& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "expected epcomm::Error mentioning '" << needle << "', nothing was thrown";
  } catch (const epcomm::Error& error) {
    EXPECT_EQ(error.category(), ErrorCategory::kInvalidArgument) << error.what();
    EXPECT_NE(error.message().find(needle), std::string::npos)
        << "message '" << error.message() << "' does not mention '" << needle << "'";
  }
}

}  // namespace epcomm::ref::testing
