// Tests of src/reference/ht_dispatch.cpp: high-throughput dispatch and cached dispatch.
#include <gtest/gtest.h>

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
// R = 2, E = 4 (rank 0: experts 0, 1 = local 0, 1; rank 1: experts 2, 3 = local 0, 1), k = 2,
// three tokens per rank. Payload rows are 2 bytes: token (s, t) is {0x10 s + t + 1, 0xa0 + 0x10 s + t}.
// Two FP8-style scales per token, given column-major (strides (1, T=3)): scale (s, t, j) is
// 1 + 10 s + t + 0.5 j.
//
//   rank 0: t0 [1, 3] w [0.5, 0.25]     -> ranks 0, 1
//           t1 [1, -1] w [1.0, 9.0]     -> rank 0 (the 9.0 of the empty slot never arrives)
//           t2 [2, 3] w [0.75, 0.125]   -> rank 1
//   rank 1: t0 [3, 3] w [0.5, 0.5]      -> rank 1 (expert 3 twice)
//           t1 [-1, -1]                 -> nowhere
//           t2 [1, 2] w [0.375, 0.625]  -> ranks 0, 1
//
// Rank 0 receives (source rank, token) (0,0), (0,1), (1,2):
//   recv_topk_idx [1, -1], [1, -1], [1, -1]   weights [0.5, 0], [1.0, 0], [0.375, 0]
//   per local expert: [0, 3]            (aligned to 4: [0, 4])
// Rank 1 receives (0,0), (0,2), (1,0), (1,2):
//   recv_topk_idx [-1, 1], [0, 1], [1, 1], [-1, 0]
//   weights       [0, 0.25], [0.75, 0.125], [0.5, 0.5], [0, 0.625]
//   per local expert: [2 (e2: (0,2), (1,2)), 4 (e3: (0,0), (0,2), (1,0) twice)]   (aligned: [4, 4])

const Geometry kHandGeometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};

HtRankInput hand_input(int rank_idx, std::vector<int64_t> topk_idx, std::vector<float> weights) {
  HtRankInput in;
  in.num_tokens = 3;
  in.num_topk = 2;
  in.topk_idx = std::move(topk_idx);
  in.topk_weights = std::move(weights);
  in.row_bytes = 2;
  for (int t = 0; t < 3; ++t) {
    in.x.push_back(static_cast<uint8_t>(0x10 * rank_idx + t + 1));
    in.x.push_back(static_cast<uint8_t>(0xa0 + 0x10 * rank_idx + t));
  }
  in.num_scales = 2;
  for (int j = 0; j < 2; ++j) {
    for (int t = 0; t < 3; ++t) in.scales.push_back(1.0f + 10 * rank_idx + t + 0.5f * j);
  }
  in.scale_stride_token = 1;
  in.scale_stride_block = 3;
  return in;
}

std::vector<HtRankInput> hand_inputs() {
  return {hand_input(0, {1, 3, 1, -1, 2, 3}, {0.5f, 0.25f, 1.0f, 9.0f, 0.75f, 0.125f}),
          hand_input(1, {3, 3, -1, -1, 1, 2}, {0.5f, 0.5f, 9.0f, 9.0f, 0.375f, 0.625f})};
}

void expect_hand_rows(const std::vector<HtRankOutput>& out) {
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].num_recv_tokens, 3);
  EXPECT_EQ(out[0].route.src_rank, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(out[0].route.src_token, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(out[1].num_recv_tokens, 4);
  EXPECT_EQ(out[1].route.src_rank, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(out[1].route.src_token, (std::vector<int32_t>{0, 2, 0, 2}));
}

TEST(ReferenceHtDispatch, HandScenario) {
  const std::vector<HtRankOutput> out = ht_dispatch(kHandGeometry, hand_inputs(), HtDispatchOptions{});
  expect_hand_rows(out);
  EXPECT_EQ(out[0].num_rows, 3);
  EXPECT_EQ(out[0].recv_x, (std::vector<uint8_t>{0x01, 0xa0, 0x02, 0xa1, 0x13, 0xb2}));
  EXPECT_EQ(out[0].recv_scales, (std::vector<float>{1.0f, 1.5f, 2.0f, 2.5f, 13.0f, 13.5f}));
  EXPECT_EQ(out[0].recv_topk_idx, (std::vector<int64_t>{1, -1, 1, -1, 1, -1}));
  EXPECT_EQ(out[0].recv_topk_weights, (std::vector<float>{0.5f, 0, 1.0f, 0, 0.375f, 0}));
  EXPECT_EQ(out[0].num_recv_tokens_per_expert, (std::vector<int32_t>{0, 3}));

  EXPECT_EQ(out[1].num_rows, 4);
  EXPECT_EQ(out[1].recv_x, (std::vector<uint8_t>{0x01, 0xa0, 0x03, 0xa2, 0x11, 0xb0, 0x13, 0xb2}));
  EXPECT_EQ(out[1].recv_scales, (std::vector<float>{1.0f, 1.5f, 3.0f, 3.5f, 11.0f, 11.5f, 13.0f, 13.5f}));
  EXPECT_EQ(out[1].recv_topk_idx, (std::vector<int64_t>{-1, 1, 0, 1, 1, 1, -1, 0}));
  EXPECT_EQ(out[1].recv_topk_weights, (std::vector<float>{0, 0.25f, 0.75f, 0.125f, 0.5f, 0.5f, 0, 0.625f}));
  EXPECT_EQ(out[1].num_recv_tokens_per_expert, (std::vector<int32_t>{2, 4}));
}

TEST(ReferenceHtDispatch, HandScenarioExpertAlignment) {
  const std::vector<HtRankOutput> out =
      ht_dispatch(kHandGeometry, hand_inputs(), HtDispatchOptions{.expert_alignment = 4});
  expect_hand_rows(out);
  EXPECT_EQ(out[0].num_recv_tokens_per_expert, (std::vector<int32_t>{0, 4}));  // 0 stays 0
  EXPECT_EQ(out[1].num_recv_tokens_per_expert, (std::vector<int32_t>{4, 4}));
  EXPECT_EQ(out[0].num_rows, 3);  // rows are never padded
}

// Row-major scales (strides (2, 1)) holding the same values give the same output.
TEST(ReferenceHtDispatch, HandScenarioRowMajorScales) {
  std::vector<HtRankInput> inputs = hand_inputs();
  for (HtRankInput& in : inputs) {
    const std::vector<float> column_major = in.scales;
    for (int t = 0; t < 3; ++t) {
      for (int j = 0; j < 2; ++j) in.scales[t * 2 + j] = column_major[t + j * 3];
    }
    in.scale_stride_token = 2;
    in.scale_stride_block = 1;
  }
  const std::vector<HtRankOutput> out = ht_dispatch(kHandGeometry, inputs, HtDispatchOptions{});
  EXPECT_EQ(out[0].recv_scales, (std::vector<float>{1.0f, 1.5f, 2.0f, 2.5f, 13.0f, 13.5f}));
  EXPECT_EQ(out[1].recv_scales, (std::vector<float>{1.0f, 1.5f, 3.0f, 3.5f, 11.0f, 11.5f, 13.0f, 13.5f}));
}

// Worst-case mode with 5 rows: rank 0 pads rows 3, 4 and rank 1 row 4 (zero payload and scales,
// recv_topk_idx -1, weight 0); the real counts stay 3 and 4.
TEST(ReferenceHtDispatch, HandScenarioWorstCase) {
  const std::vector<HtRankOutput> out =
      ht_dispatch(kHandGeometry, hand_inputs(), HtDispatchOptions{.num_worst_tokens = 5});
  expect_hand_rows(out);
  EXPECT_EQ(out[0].num_rows, 5);
  EXPECT_EQ(out[0].recv_x, (std::vector<uint8_t>{0x01, 0xa0, 0x02, 0xa1, 0x13, 0xb2, 0, 0, 0, 0}));
  EXPECT_EQ(out[0].recv_scales, (std::vector<float>{1.0f, 1.5f, 2.0f, 2.5f, 13.0f, 13.5f, 0, 0, 0, 0}));
  EXPECT_EQ(out[0].recv_topk_idx, (std::vector<int64_t>{1, -1, 1, -1, 1, -1, -1, -1, -1, -1}));
  EXPECT_EQ(out[0].recv_topk_weights, (std::vector<float>{0.5f, 0, 1.0f, 0, 0.375f, 0, 0, 0, 0, 0}));
  EXPECT_EQ(out[0].num_recv_tokens_per_expert, (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(out[1].num_rows, 5);
  EXPECT_EQ(out[1].recv_topk_idx, (std::vector<int64_t>{-1, 1, 0, 1, 1, 1, -1, 0, -1, -1}));
  EXPECT_EQ(out[1].recv_x, (std::vector<uint8_t>{0x01, 0xa0, 0x03, 0xa2, 0x11, 0xb0, 0x13, 0xb2, 0, 0}));

  // Rank 1 receives 4 rows: 3 worst-case rows are too few.
  expect_invalid_argument(
      [&] { ht_dispatch(kHandGeometry, hand_inputs(), HtDispatchOptions{.num_worst_tokens = 3}); },
      "num_worst_tokens");
}

TEST(ReferenceHtDispatch, HandScenarioWithoutTopk) {
  std::vector<HtRankInput> inputs = hand_inputs();
  for (HtRankInput& in : inputs) in.topk_weights.clear();  // not needed without top-k outputs
  const std::vector<HtRankOutput> out =
      ht_dispatch(kHandGeometry, inputs, HtDispatchOptions{.with_topk = false});
  expect_hand_rows(out);
  EXPECT_TRUE(out[0].recv_topk_idx.empty());
  EXPECT_TRUE(out[0].recv_topk_weights.empty());
  EXPECT_TRUE(out[1].recv_topk_idx.empty());
  EXPECT_EQ(out[0].recv_x, (std::vector<uint8_t>{0x01, 0xa0, 0x02, 0xa1, 0x13, 0xb2}));
  EXPECT_EQ(out[1].num_recv_tokens_per_expert, (std::vector<int32_t>{2, 4}));
}

// Cached dispatch: the routes of the hand scenario, new payload bytes {0x40 + 0x10 s + t, 0x55}.
TEST(ReferenceHtDispatch, HandScenarioCached) {
  std::vector<HtRankInput> inputs = hand_inputs();
  for (int s = 0; s < 2; ++s) {
    for (int t = 0; t < 3; ++t) {
      inputs[s].x[2 * t] = static_cast<uint8_t>(0x40 + 0x10 * s + t);
      inputs[s].x[2 * t + 1] = 0x55;
    }
  }
  const std::vector<HtRoute> routes = {{{0, 0, 1}, {0, 1, 2}}, {{0, 0, 1, 1}, {0, 2, 0, 2}}};
  const std::vector<std::vector<uint8_t>> recv_x = ht_dispatch_cached(routes, inputs);
  ASSERT_EQ(recv_x.size(), 2u);
  EXPECT_EQ(recv_x[0], (std::vector<uint8_t>{0x40, 0x55, 0x41, 0x55, 0x52, 0x55}));
  EXPECT_EQ(recv_x[1], (std::vector<uint8_t>{0x40, 0x55, 0x42, 0x55, 0x50, 0x55, 0x52, 0x55}));

  // A route naming a token its source does not have, or out of order, is rejected.
  expect_invalid_argument([&] { ht_dispatch_cached({{{0}, {3}}, {{}, {}}}, inputs); }, "routes[0].src_token");
  expect_invalid_argument([&] { ht_dispatch_cached({{{1, 0}, {0, 0}}, {{}, {}}}, inputs); }, "routes[0]");
}

// ---- properties and pressure --------------------------------------------------------------------

struct Sweep {
  int num_ranks;
  int num_local_experts;
  int num_topk;
  int64_t max_tokens;
};

std::vector<HtRankInput> random_inputs(std::mt19937& rng, const Geometry& geometry, const Sweep& sweep,
                                       const testing::RoutingOptions& routing, int64_t hidden) {
  std::uniform_int_distribution<int64_t> num_tokens(0, sweep.max_tokens);
  std::vector<HtRankInput> inputs(geometry.num_ranks);
  for (int s = 0; s < geometry.num_ranks; ++s) {
    HtRankInput& in = inputs[s];
    in.num_tokens = s == geometry.num_ranks - 1 ? 0 : num_tokens(rng);  // the last rank has no tokens
    in.num_topk = sweep.num_topk;
    in.topk_idx = testing::random_topk(rng, geometry, in.num_tokens, sweep.num_topk, routing);
    in.topk_weights = testing::random_weights(rng, in.num_tokens * sweep.num_topk);
    in.row_bytes = hidden * 2;
    in.x = testing::to_bytes(testing::random_exact_bf16(rng, in.num_tokens * hidden));
    in.num_scales = 3;
    in.scales = testing::random_weights(rng, in.num_tokens * 3);
    in.scale_stride_token = 1;  // column-major
    in.scale_stride_block = in.num_tokens;
  }
  return inputs;
}

// On random skewed routing (30% of tokens pinned to rank 0's experts, 10% empty slots, 10% repeated
// experts, a token going nowhere, an empty rank):
//   - rows received by d == sum over sources of layout(s).num_tokens_per_rank[d] (counts conserved)
//   - per local expert: sum over sources of layout(s).num_tokens_per_expert == the received count
//   - every received row is its source token's row, scales and weights; rows in the SPEC order
//   - cached dispatch reproduces recv_x
TEST(ReferenceHtDispatch, PropertiesOnSkewedRouting) {
  std::mt19937 rng(42);
  const testing::RoutingOptions routing{
      .pinned_fraction = 0.3, .masked_fraction = 0.1, .duplicate_fraction = 0.1, .one_token_nowhere = true};
  for (const Sweep sweep :
       {Sweep{2, 4, 2, 24}, Sweep{4, 2, 4, 40}, Sweep{8, 4, 6, 32}, Sweep{16, 2, 8, 20}}) {
    const Geometry geometry{.num_ranks = sweep.num_ranks,
                            .num_experts = sweep.num_ranks * sweep.num_local_experts,
                            .ranks_per_domain = 2};
    const int64_t hidden = 8;
    const std::vector<HtRankInput> inputs = random_inputs(rng, geometry, sweep, routing, hidden);
    const std::vector<HtRankOutput> out = ht_dispatch(geometry, inputs, HtDispatchOptions{});

    std::vector<Layout> layouts;
    for (const HtRankInput& in : inputs) {
      layouts.push_back(get_dispatch_layout(geometry, in.topk_idx, in.num_tokens, in.num_topk));
    }
    for (int d = 0; d < geometry.num_ranks; ++d) {
      int64_t expected_rows = 0;
      std::vector<int32_t> expected_per_expert(sweep.num_local_experts, 0);
      for (const Layout& layout : layouts) {
        expected_rows += layout.num_tokens_per_rank[d];
        for (int le = 0; le < sweep.num_local_experts; ++le) {
          expected_per_expert[le] += layout.num_tokens_per_expert[d * sweep.num_local_experts + le];
        }
      }
      ASSERT_EQ(out[d].num_recv_tokens, expected_rows) << "rank " << d;
      EXPECT_EQ(out[d].num_recv_tokens_per_expert, expected_per_expert) << "rank " << d;

      for (int64_t row = 0; row < out[d].num_recv_tokens; ++row) {
        const int s = out[d].route.src_rank[row];
        const int64_t t = out[d].route.src_token[row];
        const HtRankInput& in = inputs[s];
        ASSERT_EQ(layouts[s].is_token_in_rank[t * geometry.num_ranks + d], 1);
        if (row > 0) {
          const int prev_s = out[d].route.src_rank[row - 1];
          ASSERT_TRUE(prev_s < s || (prev_s == s && out[d].route.src_token[row - 1] < t));
        }
        for (int64_t b = 0; b < in.row_bytes; ++b) {
          ASSERT_EQ(out[d].recv_x[row * in.row_bytes + b], in.x[t * in.row_bytes + b]);
        }
        for (int j = 0; j < 3; ++j)
          ASSERT_EQ(out[d].recv_scales[row * 3 + j], in.scales[t + j * in.num_tokens]);
        for (int k = 0; k < in.num_topk; ++k) {
          const int64_t e = in.topk_idx[t * in.num_topk + k];
          const bool local = e >= 0 && geometry.rank_of_expert(e) == d;
          ASSERT_EQ(out[d].recv_topk_idx[row * in.num_topk + k], local ? e % sweep.num_local_experts : -1);
          ASSERT_EQ(out[d].recv_topk_weights[row * in.num_topk + k],
                    local ? in.topk_weights[t * in.num_topk + k] : 0);
        }
      }
    }
    std::vector<HtRoute> routes;
    for (const HtRankOutput& o : out) routes.push_back(o.route);
    const std::vector<std::vector<uint8_t>> cached = ht_dispatch_cached(routes, inputs);
    for (int d = 0; d < geometry.num_ranks; ++d) EXPECT_EQ(cached[d], out[d].recv_x) << "rank " << d;
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ReferenceHtDispatch, RejectsBadArguments) {
  {
    std::vector<HtRankInput> inputs = hand_inputs();
    inputs[1].topk_idx[3] = 4;  // == E
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "inputs[1].topk_idx");
    inputs[1].topk_idx[3] = -2;
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "topk_idx");
  }
  expect_invalid_argument(
      [&] {
        ht_dispatch(Geometry{.num_ranks = 2, .num_experts = 3, .ranks_per_domain = 2}, hand_inputs(), {});
      },
      "num_experts");
  expect_invalid_argument(
      [&] {
        ht_dispatch(Geometry{.num_ranks = 3, .num_experts = 6, .ranks_per_domain = 3}, hand_inputs(), {});
      },
      "inputs");
  expect_invalid_argument([&] { ht_dispatch(kHandGeometry, hand_inputs(), {.expert_alignment = 0}); },
                          "expert_alignment");
  {
    std::vector<HtRankInput> inputs = hand_inputs();
    inputs[0].x.pop_back();
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "inputs[0].x");
  }
  {
    std::vector<HtRankInput> inputs = hand_inputs();
    inputs[1].topk_weights.pop_back();
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "inputs[1].topk_weights");
  }
  {
    std::vector<HtRankInput> inputs = hand_inputs();
    inputs[0].scale_stride_block = 4;  // the last scale would be at 2 + 1 * 4 = 6 of 6
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "inputs[0].scales");
  }
  {
    std::vector<HtRankInput> inputs = hand_inputs();
    inputs[1].row_bytes = 1;
    inputs[1].x.resize(3);
    expect_invalid_argument([&] { ht_dispatch(kHandGeometry, inputs, {}); }, "inputs[1].row_bytes");
  }
}

}  // namespace
}  // namespace epcomm::ref
