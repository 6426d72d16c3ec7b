// Tests of src/reference/ll_dispatch.cpp: low-latency dispatch in FP8 (float, rounded and UE8M0
// scales) and BF16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "epcomm/reference.hpp"
#include "test_reference_common.hpp"

namespace epcomm::ref {
namespace {

using testing::expect_invalid_argument;

// ---- the hand-worked scenario -------------------------------------------------------------------
//
// R = 2, E = 4 (rank 0: experts 0, 1; rank 1: experts 2, 3), k = 2, max_tokens_per_rank T = 3, so
// capacity = R*T = 6 rows per local expert. hidden = 640 = 5 FP8 blocks (UE8M0: 2 words, the second
// holding block 4 alone). Every block b of token (s, t) is the constant m(s,t) * 2^b:
//   rank 0: t0 [1, 2]   m = 1          rank 1: t0 [3, 1]    m = 4
//           t1 [2, -1]  m = -2                 t1 [-1, -1]  m = 3 (goes nowhere)
//                                              t2 [1, 1]    m = -0.5 (expert 1 twice: two rows)
// Rows per expert, by source rank then token then slot:
//   expert 0 (rank 0, local 0): none.       layout_range [0 | 0, 0 | 0]
//   expert 1 (rank 0, local 1): (0,t0), (1,t0), (1,t2), (1,t2).
//                                           layout_range [(0 << 32) | 1, (1 << 32) | 3]
//   expert 2 (rank 1, local 0): (0,t0), (0,t1). layout_range [(0 << 32) | 2, (2 << 32) | 0]
//   expert 3 (rank 1, local 1): (1,t0).     layout_range [(0 << 32) | 0, (0 << 32) | 1]
// src_info holds the source token index, -1 on unused rows.
//
// FP8, plain scales: amax = |m| 2^b; scale_inv = |m| 2^b / 448; x * (448 / amax) = +-448 up to a
//   float rounding, so every byte is 0x7e (or 0xfe for negative m).
// FP8, round_scale: |m| 2^b / 448 = |m| 2^(b-6) / 7 lies in (|m| 2^(b-9), |m| 2^(b-8)), so
//   scale_inv = |m| 2^(b-8), x * scale = +-256 = 0.1111.000 -> bytes 0x78 (0xf8 negative).
// UE8M0: the byte of |m| 2^(b-8) is 127 + b - 8 + log2|m| = 119 + b + log2|m|; four per word,
//   block 4w + j in byte j:  m = 1:    0x7a797877, 0x7b      m = -2:   0x7b7a7978, 0x7c
//                            m = 4:    0x7c7b7a79, 0x7d      m = -0.5: 0x79787776, 0x7a
// BF16: the row's bytes, little-endian: 2^b for m = 1 is 0x3f80, 0x4000, 0x4080, 0x4100, 0x4180;
//   for m = -0.5 it is 0xbf00, 0xbf80, 0xc000, 0xc080, 0xc100.

constexpr int64_t kHidden = 640;
constexpr int64_t kMaxTokens = 3;
constexpr int64_t kCapacity = 6;
const Geometry kHandGeometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};

LlRankInput hand_input(std::vector<int64_t> topk_idx, std::vector<float> multipliers) {
  LlRankInput in;
  in.num_tokens = static_cast<int64_t>(multipliers.size());
  in.num_topk = 2;
  in.topk_idx = std::move(topk_idx);
  for (const float m : multipliers) {
    for (int64_t c = 0; c < kHidden; ++c)
      in.x.push_back(float_to_bf16(std::ldexp(m, static_cast<int>(c / 128))));
  }
  return in;
}

std::vector<LlRankInput> hand_inputs() {
  return {hand_input({1, 2, 2, -1}, {1, -2}), hand_input({3, 1, -1, -1, 1, 1}, {4, 3, -0.5f})};
}

constexpr int64_t range(int64_t begin, int64_t count) {
  return (begin << 32) | count;
}

void expect_hand_layout(const std::vector<LlRankOutput>& out) {
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].capacity, kCapacity);
  EXPECT_EQ(out[0].recv_count, (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(out[0].layout_range, (std::vector<int64_t>{range(0, 0), range(0, 0), range(0, 1), range(1, 3)}));
  EXPECT_EQ(out[0].src_info, (std::vector<int32_t>{-1, -1, -1, -1, -1, -1, 0, 0, 2, 2, -1, -1}));
  EXPECT_EQ(out[1].capacity, kCapacity);
  EXPECT_EQ(out[1].recv_count, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(out[1].layout_range, (std::vector<int64_t>{range(0, 2), range(2, 0), range(0, 0), range(0, 1)}));
  EXPECT_EQ(out[1].src_info, (std::vector<int32_t>{0, 1, -1, -1, -1, -1, 0, -1, -1, -1, -1, -1}));
}

// Row `row` of local expert `local_expert` is `row_bytes` copies of `byte` (FP8 constant rows).
void expect_fp8_row(const LlRankOutput& out, int local_expert, int row, uint8_t byte) {
  const uint8_t* data = out.recv_x.data() + (local_expert * kCapacity + row) * kHidden;
  for (int64_t c = 0; c < kHidden; ++c)
    ASSERT_EQ(data[c], byte) << "expert " << local_expert << " row " << row;
}

// The FP8 payload of the hand scenario with codes `pos` / `neg` for positive / negative tokens.
void expect_hand_fp8_payload(const std::vector<LlRankOutput>& out, uint8_t pos, uint8_t neg) {
  ASSERT_EQ(out[0].recv_x.size(), static_cast<size_t>(2 * kCapacity * kHidden));
  for (int row = 0; row < kCapacity; ++row) expect_fp8_row(out[0], 0, row, 0);
  expect_fp8_row(out[0], 1, 0, pos);  // (0, t0), m = 1
  expect_fp8_row(out[0], 1, 1, pos);  // (1, t0), m = 4
  expect_fp8_row(out[0], 1, 2, neg);  // (1, t2), m = -0.5
  expect_fp8_row(out[0], 1, 3, neg);  // (1, t2) again
  expect_fp8_row(out[0], 1, 4, 0);
  expect_fp8_row(out[1], 0, 0, pos);  // (0, t0)
  expect_fp8_row(out[1], 0, 1, neg);  // (0, t1), m = -2
  expect_fp8_row(out[1], 0, 2, 0);
  expect_fp8_row(out[1], 1, 0, pos);  // (1, t0)
  expect_fp8_row(out[1], 1, 1, 0);
}

TEST(ReferenceLlDispatch, HandScenarioUe8m0) {
  const std::vector<LlRankOutput> out = ll_dispatch(kHandGeometry, kHidden, kMaxTokens, hand_inputs(),
                                                    {.round_scale = true, .use_ue8m0 = true});
  expect_hand_layout(out);
  expect_hand_fp8_payload(out, 0x78, 0xf8);
  EXPECT_TRUE(out[0].recv_scales.empty());
  // [nle = 2, words = 2, capacity = 6]
  EXPECT_EQ(out[0].recv_scales_ue8m0,
            (std::vector<int32_t>{0,          0,          0,          0,          0, 0,  // expert 0, word 0
                                  0,          0,          0,          0,          0, 0,  // expert 0, word 1
                                  0x7a797877, 0x7c7b7a79, 0x79787776, 0x79787776, 0, 0,
                                  0x7b,       0x7d,       0x7a,       0x7a,       0, 0}));
  EXPECT_EQ(out[1].recv_scales_ue8m0, (std::vector<int32_t>{0x7a797877, 0x7b7a7978, 0, 0, 0, 0,  //
                                                            0x7b,       0x7c,       0, 0, 0, 0,  //
                                                            0x7c7b7a79, 0,          0, 0, 0, 0,  //
                                                            0x7d,       0,          0, 0, 0, 0}));
}

// Expected float scales [nle, 5 blocks, capacity] of one rank, from the per-row |m| of each local
// expert (0 = unused row) and the scale rule for |m| 2^b.
std::vector<float> hand_scales(const std::vector<std::vector<float>>& row_m, float (*rule)(float, int)) {
  std::vector<float> scales;
  for (const std::vector<float>& rows : row_m) {
    for (int b = 0; b < 5; ++b) {
      for (const float m : rows) scales.push_back(m == 0 ? 0.0f : rule(m, b));
    }
  }
  return scales;
}

TEST(ReferenceLlDispatch, HandScenarioPlainScales) {
  const std::vector<LlRankOutput> out = ll_dispatch(kHandGeometry, kHidden, kMaxTokens, hand_inputs(), {});
  expect_hand_layout(out);
  expect_hand_fp8_payload(out, 0x7e, 0xfe);
  EXPECT_TRUE(out[0].recv_scales_ue8m0.empty());
  auto plain = [](float m, int b) { return std::ldexp(m, b) / 448.0f; };
  EXPECT_EQ(out[0].recv_scales, hand_scales({{0, 0, 0, 0, 0, 0}, {1, 4, 0.5f, 0.5f, 0, 0}}, plain));
  EXPECT_EQ(out[1].recv_scales, hand_scales({{1, 2, 0, 0, 0, 0}, {4, 0, 0, 0, 0, 0}}, plain));
}

TEST(ReferenceLlDispatch, HandScenarioRoundScaleFloat) {
  const std::vector<LlRankOutput> out =
      ll_dispatch(kHandGeometry, kHidden, kMaxTokens, hand_inputs(), {.round_scale = true});
  expect_hand_layout(out);
  expect_hand_fp8_payload(out, 0x78, 0xf8);
  auto rounded = [](float m, int b) { return std::ldexp(m, b - 8); };
  EXPECT_EQ(out[0].recv_scales, hand_scales({{0, 0, 0, 0, 0, 0}, {1, 4, 0.5f, 0.5f, 0, 0}}, rounded));
  EXPECT_EQ(out[1].recv_scales, hand_scales({{1, 2, 0, 0, 0, 0}, {4, 0, 0, 0, 0, 0}}, rounded));
}

TEST(ReferenceLlDispatch, HandScenarioBf16) {
  const std::vector<LlRankOutput> out =
      ll_dispatch(kHandGeometry, kHidden, kMaxTokens, hand_inputs(), {.use_fp8 = false});
  expect_hand_layout(out);
  EXPECT_TRUE(out[0].recv_scales.empty());
  EXPECT_TRUE(out[0].recv_scales_ue8m0.empty());
  ASSERT_EQ(out[0].recv_x.size(), static_cast<size_t>(2 * kCapacity * kHidden * 2));
  // Rank 0, expert 1, row 0 is (0, t0) with m = 1; row 2 is (1, t2) with m = -0.5.
  const uint16_t m1[5] = {0x3f80, 0x4000, 0x4080, 0x4100, 0x4180};
  const uint16_t m_half[5] = {0xbf00, 0xbf80, 0xc000, 0xc080, 0xc100};
  const uint8_t* row0 = out[0].recv_x.data() + (1 * kCapacity + 0) * kHidden * 2;
  const uint8_t* row2 = out[0].recv_x.data() + (1 * kCapacity + 2) * kHidden * 2;
  for (int64_t c = 0; c < kHidden; ++c) {
    ASSERT_EQ(row0[2 * c], m1[c / 128] & 0xff) << c;
    ASSERT_EQ(row0[2 * c + 1], m1[c / 128] >> 8) << c;
    ASSERT_EQ(row2[2 * c], m_half[c / 128] & 0xff) << c;
    ASSERT_EQ(row2[2 * c + 1], m_half[c / 128] >> 8) << c;
  }
  // Expert 0 of rank 0 received nothing: all zero.
  for (int64_t i = 0; i < kCapacity * kHidden * 2; ++i) ASSERT_EQ(out[0].recv_x[i], 0);
}

// ---- properties and pressure --------------------------------------------------------------------

// On skewed random routing (30% pinned to rank 0, 10% empty slots, 5% repeated experts, a token
// going nowhere, an empty rank), for every mode:
//   - each (token, slot) with an expert has exactly one row, found through layout_range/src_info,
//     and the rows of one expert are its sources' selections (counts match the layout)
//   - the row holds ll_cast_row_fp8 of the token (or its BF16 bytes), scales where they belong
//   - unused rows are zero with src_info -1
TEST(ReferenceLlDispatch, PropertiesOnSkewedRouting) {
  std::mt19937 rng(2024);
  const testing::RoutingOptions routing{
      .pinned_fraction = 0.3, .masked_fraction = 0.1, .duplicate_fraction = 0.05, .one_token_nowhere = true};
  const LlOptions modes[] = {
      {}, {.round_scale = true}, {.round_scale = true, .use_ue8m0 = true}, {.use_fp8 = false}};
  for (const int num_ranks : {4, 8, 16}) {
    for (const LlOptions& options : modes) {
      const Geometry geometry{
          .num_ranks = num_ranks, .num_experts = num_ranks * 2, .ranks_per_domain = num_ranks};
      const int64_t hidden = 384;  // 3 blocks: one UE8M0 word with an unused byte
      const int64_t max_tokens = 12;
      const int num_topk = 4;
      std::vector<LlRankInput> inputs(num_ranks);
      for (int s = 0; s < num_ranks; ++s) {
        inputs[s].num_tokens = s == 1 ? 0 : max_tokens - s % 3;
        inputs[s].num_topk = num_topk;
        inputs[s].topk_idx = testing::random_topk(rng, geometry, inputs[s].num_tokens, num_topk, routing);
        inputs[s].x = testing::random_normal_bf16(rng, inputs[s].num_tokens * hidden, 2.0f);
      }
      const std::vector<LlRankOutput> out = ll_dispatch(geometry, hidden, max_tokens, inputs, options);
      const int nle = geometry.num_local_experts();
      const int64_t row_bytes = options.use_fp8 ? hidden : hidden * 2;
      std::vector<std::vector<bool>> used(num_ranks, std::vector<bool>(nle * out[0].capacity, false));

      for (int s = 0; s < num_ranks; ++s) {
        const LlRankInput& in = inputs[s];
        for (int64_t t = 0; t < in.num_tokens; ++t) {
          std::vector<uint8_t> q(hidden);
          std::vector<float> scale_inv(hidden / 128);
          ll_cast_row_fp8(in.x.data() + t * hidden, hidden, options, q.data(), scale_inv.data());
          const std::vector<uint8_t> bf16_bytes(testing::to_bytes(
              std::vector<uint16_t>(in.x.begin() + t * hidden, in.x.begin() + (t + 1) * hidden)));
          for (int k = 0; k < num_topk; ++k) {
            const int64_t e = in.topk_idx[t * num_topk + k];
            if (e < 0) continue;
            const LlRankOutput& o = out[geometry.rank_of_expert(e)];
            const int le = static_cast<int>(e % nle);
            const int64_t r = o.layout_range[le * num_ranks + s];
            int64_t row = -1;  // the first row of t in the range not yet claimed
            for (int64_t i = r >> 32; i < (r >> 32) + (r & 0xffffffff); ++i) {
              if (o.src_info[le * o.capacity + i] == t &&
                  !used[geometry.rank_of_expert(e)][le * o.capacity + i]) {
                row = i;
                break;
              }
            }
            ASSERT_GE(row, 0) << "no row for rank " << s << " token " << t << " expert " << e;
            used[geometry.rank_of_expert(e)][le * o.capacity + row] = true;
            const uint8_t* got = o.recv_x.data() + (le * o.capacity + row) * row_bytes;
            const std::vector<uint8_t>& want = options.use_fp8 ? q : bf16_bytes;
            ASSERT_TRUE(std::equal(want.begin(), want.end(), got))
                << "payload of token " << t << " expert " << e;
            for (int b = 0; options.use_fp8 && b < 3; ++b) {
              if (options.use_ue8m0) {
                const uint32_t word = static_cast<uint32_t>(o.recv_scales_ue8m0[le * o.capacity + row]);
                ASSERT_EQ((word >> (8 * b)) & 0xff, ue8m0_of(scale_inv[b]));
                ASSERT_EQ(word >> 24, 0u);  // block 3 does not exist
              } else {
                ASSERT_EQ(o.recv_scales[(le * 3 + b) * o.capacity + row], scale_inv[b]);
              }
            }
          }
        }
      }
      // Every row in use was claimed by exactly one selection, and the rest are empty.
      for (int d = 0; d < num_ranks; ++d) {
        for (int le = 0; le < nle; ++le) {
          int64_t total = 0;
          for (int s = 0; s < num_ranks; ++s) total += out[d].layout_range[le * num_ranks + s] & 0xffffffff;
          ASSERT_EQ(out[d].recv_count[le], total);
          for (int64_t row = 0; row < out[d].capacity; ++row) {
            ASSERT_EQ(used[d][le * out[d].capacity + row], row < total) << "rank " << d << " expert " << le;
            if (row < total) continue;
            ASSERT_EQ(out[d].src_info[le * out[d].capacity + row], -1);
            for (int64_t b = 0; b < row_bytes; ++b)
              ASSERT_EQ(out[d].recv_x[(le * out[d].capacity + row) * row_bytes + b], 0);
          }
        }
      }
    }
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ReferenceLlDispatch, RejectsBadArguments) {
  expect_invalid_argument(
      [&] { ll_dispatch(kHandGeometry, kHidden, kMaxTokens, hand_inputs(), {.use_ue8m0 = true}); },
      "use_ue8m0");
  expect_invalid_argument([&] { ll_dispatch(kHandGeometry, kHidden, 2, hand_inputs(), {}); },
                          "inputs[1].num_tokens");
  expect_invalid_argument(
      [&] {
        ll_dispatch(Geometry{.num_ranks = 2, .num_experts = 5, .ranks_per_domain = 2}, kHidden, 3,
                    hand_inputs(), {});
      },
      "num_experts");
  {
    std::vector<LlRankInput> inputs = hand_inputs();
    for (LlRankInput& in : inputs) in.x.resize(in.num_tokens * 200);
    expect_invalid_argument([&] { ll_dispatch(kHandGeometry, 200, kMaxTokens, inputs, {}); }, "hidden");
    // BF16 rows have no blocks: any hidden is fine.
    EXPECT_NO_THROW(ll_dispatch(kHandGeometry, 200, kMaxTokens, inputs, {.use_fp8 = false}));
  }
  {
    std::vector<LlRankInput> inputs = hand_inputs();
    inputs[0].topk_idx[1] = 4;  // == E
    expect_invalid_argument([&] { ll_dispatch(kHandGeometry, kHidden, kMaxTokens, inputs, {}); },
                            "inputs[0].topk_idx");
    inputs[0].topk_idx[1] = -3;
    expect_invalid_argument([&] { ll_dispatch(kHandGeometry, kHidden, kMaxTokens, inputs, {}); }, "topk_idx");
  }
  {
    // Rank 1 sends expert 1 three rows (t0 once, t2 twice): with T = 2 it owns only two slots.
    std::vector<LlRankInput> inputs = hand_inputs();
    inputs[1].num_tokens = 2;
    inputs[1].topk_idx = {1, 1, 1, -1};
    inputs[1].x.resize(2 * kHidden);
    expect_invalid_argument([&] { ll_dispatch(kHandGeometry, kHidden, 2, inputs, {}); },
                            "max_tokens_per_rank");
  }
}

}  // namespace
}  // namespace epcomm::ref
