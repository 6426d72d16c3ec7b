// Tests of src/reference/ll_combine.cpp: low-latency combine.
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

using testing::bf16_of;
using testing::expect_invalid_argument;

// ---- the hand-worked scenario -------------------------------------------------------------------
//
// R = 2, E = 4 (rank 0: experts 0, 1; rank 1: experts 2, 3), k = 2, T = 3 (capacity 6), hidden = 2.
//   rank 0: t0 [1, 2] w [0.5, 0.25];  t1 [2, -1] w [2, 9 (empty slot, unused)]
//   rank 1: t0 [3, 1] w [1, 0.5];     t1 [-1, -1];   t2 [1, 1] w [0.25, 0.75] (expert 1 twice)
// The handles are written by hand in an order unlike the reference dispatch's, as a GPU may
// produce it, to show combine follows layout_range and src_info:
//   expert 1 (rank 0, local 1): source 1 first, rows 0..2 = tokens (t2, t0, t2), y [1,2] [3,4] [5,6];
//                               source 0 at row 3 = t0, y [7, 8].
//   expert 2 (rank 1, local 0): source 0, rows 0..1 = tokens (t1, t0), y [10, 20] [30, 40].
//   expert 3 (rank 1, local 1): source 1, row 0 = t0, y [50, 60].
// Every other row of y holds 99 and must not be read.
// out = sum over slots (ascending) of w * y[row], float32, one BF16 rounding:
//   rank 0 t0: 0.5 [7, 8] + 0.25 [30, 40]  = [11, 14]
//   rank 0 t1: 2 [10, 20]                  = [20, 40]
//   rank 1 t0: 1 [50, 60] + 0.5 [3, 4]     = [51.5, 62]
//   rank 1 t1: no expert                   = [0, 0]
//   rank 1 t2: slot 0 takes t2's first row (row 0), slot 1 its second (row 2):
//              0.25 [1, 2] + 0.75 [5, 6]   = [4, 5]   (the other matching would give [2, 3])

const Geometry kHandGeometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};
constexpr int64_t kCapacity = 6;

constexpr int64_t range(int64_t begin, int64_t count) {
  return (begin << 32) | count;
}

std::vector<LlRankInput> hand_inputs() {
  std::vector<LlRankInput> inputs(2);
  inputs[0].num_tokens = 2;
  inputs[0].num_topk = 2;
  inputs[0].topk_idx = {1, 2, 2, -1};
  inputs[1].num_tokens = 3;
  inputs[1].num_topk = 2;
  inputs[1].topk_idx = {3, 1, -1, -1, 1, 1};
  return inputs;
}

const std::vector<std::vector<float>> kHandWeights = {{0.5f, 0.25f, 2.0f, 9.0f},
                                                      {1.0f, 0.5f, 1.0f, 1.0f, 0.25f, 0.75f}};

std::vector<LlRankOutput> hand_handles() {
  std::vector<LlRankOutput> handles(2);
  for (LlRankOutput& h : handles) h.capacity = kCapacity;
  // layout_range [nle, R]: [local expert][source rank]
  handles[0].layout_range = {range(0, 0), range(0, 0), range(3, 1), range(0, 3)};
  handles[0].src_info = {-1, -1, -1, -1, -1, -1, 2, 0, 2, 0, -1, -1};
  handles[0].recv_count = {0, 4};
  handles[1].layout_range = {range(0, 2), range(2, 0), range(1, 0), range(0, 1)};
  handles[1].src_info = {1, 0, -1, -1, -1, -1, 0, -1, -1, -1, -1, -1};
  handles[1].recv_count = {2, 1};
  return handles;
}

// y [nle, capacity, hidden = 2] per rank.
std::vector<std::vector<uint16_t>> hand_y() {
  std::vector<float> y0(2 * kCapacity * 2, 99.0f);
  const float expert1[] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::copy(std::begin(expert1), std::end(expert1), y0.begin() + kCapacity * 2);
  std::vector<float> y1(2 * kCapacity * 2, 99.0f);
  const float expert2[] = {10, 20, 30, 40};
  std::copy(std::begin(expert2), std::end(expert2), y1.begin());
  y1[kCapacity * 2] = 50;
  y1[kCapacity * 2 + 1] = 60;
  return {bf16_of(y0), bf16_of(y1)};
}

TEST(ReferenceLlCombine, HandScenario) {
  const std::vector<std::vector<uint16_t>> out =
      ll_combine(kHandGeometry, 2, hand_handles(), hand_y(), hand_inputs(), kHandWeights);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], bf16_of({11, 14, 20, 40}));
  EXPECT_EQ(out[1], bf16_of({51.5f, 62, 0, 0, 4, 5}));
}

// The same routing through ll_dispatch (BF16, hidden 2): its handles serve combine as well.
TEST(ReferenceLlCombine, HandScenarioThroughDispatch) {
  std::vector<LlRankInput> inputs = hand_inputs();
  inputs[0].x = bf16_of({1, 2, 3, 4});
  inputs[1].x = bf16_of({5, 6, 7, 8, 9, 10});
  const std::vector<LlRankOutput> handles = ll_dispatch(kHandGeometry, 2, 3, inputs, {.use_fp8 = false});
  std::vector<std::vector<uint16_t>> y;
  for (const LlRankOutput& h : handles) y.push_back(testing::from_bytes(h.recv_x));
  // y rows are the tokens themselves, so out[t] = (sum of t's weights) x[t]:
  //   rank 0 t0: 0.75 [1, 2] = [0.75, 1.5];  t1: 2 [3, 4] = [6, 8]
  //   rank 1 t0: 1.5 [5, 6] = [7.5, 9];      t1: [0, 0];   t2: 1.0 [9, 10] = [9, 10]
  const std::vector<std::vector<uint16_t>> out =
      ll_combine(kHandGeometry, 2, handles, y, inputs, kHandWeights);
  EXPECT_EQ(out[0], bf16_of({0.75f, 1.5f, 6, 8}));
  EXPECT_EQ(out[1], bf16_of({7.5f, 9, 0, 0, 9, 10}));
}

// Float32 addition is not associative, so the order is part of the contract (the GPU kernels
// reproduce it bit for bit): each holding rank's partial first, then the partials in rank order.
// Terms 2^24 (rank 0), 1 (rank 1), -2^24 (rank 0) in slot order: added slot by slot they give 0
// (2^24 + 1 rounds back to 2^24); per rank first, (2^24 - 2^24) + 1 = 1.
TEST(ReferenceLlCombine, AddsEachRanksPartialThenTheRanksInOrder) {
  std::vector<LlRankInput> inputs(2);
  inputs[0].num_tokens = 1;
  inputs[0].num_topk = 3;
  inputs[0].topk_idx = {0, 2, 1};
  inputs[0].x = bf16_of({1, 1});
  inputs[1].num_topk = 3;
  const std::vector<LlRankOutput> handles = ll_dispatch(kHandGeometry, 2, 1, inputs, {.use_fp8 = false});
  // Every row of expert e holds value_of[e] (experts 0, 1 on rank 0; 2, 3 on rank 1).
  const float value_of[4] = {0x1p24f, -0x1p24f, 1.0f, 0.0f};
  std::vector<std::vector<uint16_t>> y(2);
  for (int r = 0; r < 2; ++r) {
    const int64_t cap = handles[r].capacity;
    y[r].resize(static_cast<size_t>(2 * cap * 2));
    for (int64_t i = 0; i < 2 * cap * 2; ++i)
      y[r][static_cast<size_t>(i)] = float_to_bf16(value_of[r * 2 + i / (cap * 2)]);
  }
  const std::vector<std::vector<uint16_t>> out =
      ll_combine(kHandGeometry, 2, handles, y, inputs, {{1.0f, 1.0f, 1.0f}, {}});
  EXPECT_EQ(out[0], bf16_of({1, 1}));
}

// ---- properties and pressure --------------------------------------------------------------------

// combine(dispatch(x)) with y = the received rows (a unit expert) is sum_k w_k x[t], for BF16 and
// FP8 dispatch (y = BF16 of the dequantized row). Tolerances per element, W = sum of the token's
// weights (all positive):
//   BF16: the float accumulation of <= k terms errs by < 2^-20 W |x|, the final BF16 rounding by
//         at most 2^-8 of the result: bound 2^-8 W |x| + 2^-20 W |x|.
//   FP8:  each term's dequantized value errs by <= 2^-4 |x| + 2^-9 scale_inv (see the cast test)
//         plus its BF16 rounding (2^-8 of it), then the final rounding: bound
//         W (0.07 |x| + 2^-8 scale_inv) + 2^-8 W |x|.
// Routing: 30% pinned to rank 0, 10% empty slots, 5% repeated experts, a token going nowhere
// (out = 0), rank 1 without tokens; R = 4, 8, 16.
TEST(ReferenceLlCombine, CombineOfDispatchIsWeightedSum) {
  std::mt19937 rng(5);
  const testing::RoutingOptions routing{
      .pinned_fraction = 0.3, .masked_fraction = 0.1, .duplicate_fraction = 0.05, .one_token_nowhere = true};
  for (const int num_ranks : {4, 8, 16}) {
    for (const bool use_fp8 : {false, true}) {
      const Geometry geometry{
          .num_ranks = num_ranks, .num_experts = num_ranks * 2, .ranks_per_domain = num_ranks};
      const int64_t hidden = 256;
      const int64_t max_tokens = 16;
      const int num_topk = 4;
      std::vector<LlRankInput> inputs(num_ranks);
      std::vector<std::vector<float>> weights(num_ranks);
      for (int s = 0; s < num_ranks; ++s) {
        inputs[s].num_tokens = s == 1 ? 0 : max_tokens - s % 4;
        inputs[s].num_topk = num_topk;
        inputs[s].topk_idx = testing::random_topk(rng, geometry, inputs[s].num_tokens, num_topk, routing);
        inputs[s].x = testing::random_normal_bf16(rng, inputs[s].num_tokens * hidden, 3.0f);
        weights[s] = testing::random_weights(rng, inputs[s].num_tokens * num_topk);
      }
      const LlOptions options{.use_fp8 = use_fp8};
      const std::vector<LlRankOutput> handles = ll_dispatch(geometry, hidden, max_tokens, inputs, options);
      std::vector<std::vector<uint16_t>> y;
      for (const LlRankOutput& h : handles) {
        if (!use_fp8) {
          y.push_back(testing::from_bytes(h.recv_x));
          continue;
        }
        std::vector<uint16_t> rows(h.recv_x.size());
        for (size_t i = 0; i < rows.size(); ++i) {
          const int64_t row = static_cast<int64_t>(i) / hidden;  // local_expert * capacity + slot
          const int64_t block = static_cast<int64_t>(i) % hidden / 128;
          const int64_t local_expert = row / h.capacity;
          const float scale_inv =
              h.recv_scales[(local_expert * (hidden / 128) + block) * h.capacity + row % h.capacity];
          rows[i] = float_to_bf16(e4m3_to_float(h.recv_x[i]) * scale_inv);
        }
        y.push_back(rows);
      }
      const std::vector<std::vector<uint16_t>> out =
          ll_combine(geometry, hidden, handles, y, inputs, weights);

      for (int s = 0; s < num_ranks; ++s) {
        for (int64_t t = 0; t < inputs[s].num_tokens; ++t) {
          double total_weight = 0;
          for (int k = 0; k < num_topk; ++k) {
            if (inputs[s].topk_idx[t * num_topk + k] >= 0) total_weight += weights[s][t * num_topk + k];
          }
          for (int64_t h = 0; h < hidden; ++h) {
            const double x = bf16_to_float(inputs[s].x[t * hidden + h]);
            const double got = bf16_to_float(out[s][t * hidden + h]);
            double block_amax = 1e-4;
            for (int64_t c = h / 128 * 128; c < h / 128 * 128 + 128; ++c) {
              block_amax =
                  std::max(block_amax, std::fabs(double{bf16_to_float(inputs[s].x[t * hidden + c])}));
            }
            const double tolerance = use_fp8
                                         ? total_weight * (0.07 * std::fabs(x) + 0x1p-8 * block_amax / 448) +
                                               0x1p-8 * total_weight * std::fabs(x)
                                         : (0x1p-8 + 0x1p-20) * total_weight * std::fabs(x);
            ASSERT_LE(std::fabs(got - total_weight * x), tolerance)
                << "R=" << num_ranks << " fp8=" << use_fp8 << " rank " << s << " token " << t << " h " << h;
          }
        }
      }
      for (int64_t h = 0; h < hidden; ++h) ASSERT_EQ(out[0][h], 0) << "token 0 goes nowhere";
    }
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ReferenceLlCombine, RejectsBadArguments) {
  {
    std::vector<LlRankOutput> handles = hand_handles();
    handles[1].src_info[0] = 2;  // rank 0's t1 no longer has a row in expert 2
    expect_invalid_argument(
        [&] { ll_combine(kHandGeometry, 2, handles, hand_y(), hand_inputs(), kHandWeights); },
        "dispatch[1].src_info");
  }
  {
    std::vector<LlRankOutput> handles = hand_handles();
    handles[0].layout_range[3] = range(4, 3);  // past capacity 6
    expect_invalid_argument(
        [&] { ll_combine(kHandGeometry, 2, handles, hand_y(), hand_inputs(), kHandWeights); },
        "dispatch[0].layout_range");
  }
  {
    std::vector<std::vector<float>> weights = kHandWeights;
    weights[1].pop_back();
    expect_invalid_argument(
        [&] { ll_combine(kHandGeometry, 2, hand_handles(), hand_y(), hand_inputs(), weights); },
        "topk_weights[1]");
  }
  {
    std::vector<std::vector<uint16_t>> y = hand_y();
    y[0].pop_back();
    expect_invalid_argument(
        [&] { ll_combine(kHandGeometry, 2, hand_handles(), y, hand_inputs(), kHandWeights); }, "y[0]");
  }
  {
    std::vector<LlRankInput> inputs = hand_inputs();
    inputs[1].topk_idx[0] = 4;
    expect_invalid_argument(
        [&] { ll_combine(kHandGeometry, 2, hand_handles(), hand_y(), inputs, kHandWeights); },
        "inputs[1].topk_idx");
  }
}

}  // namespace
}  // namespace epcomm::ref
