// Tests of src/reference/ht_combine.cpp: high-throughput combine.
#include <gtest/gtest.h>

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
// The routes of the ht_dispatch hand scenario (R = 2, three tokens per rank, hidden = 2, k = 2):
//   rank 0 received (0,0), (0,1), (1,2) and returns rows [1, 2], [3, 4], [5, 6]
//   rank 1 received (0,0), (0,2), (1,0), (1,2) and returns [10, 20], [256, 40], [50, 60], [70, 80]
// Biases of rank 0: bias0 [0.5, 0.5], [0.25, 0.25], [1, 1]; bias1 [100, 0], [0, 0], [0, -1].
// Biases of rank 1: no bias0; bias1 [-1, -2], [8, 8], [0.5, 0.5].
//
// out = bias0 + bias1 + the rows of the token, in float32, rounded to BF16 once:
//   rank 0 t0: [0.5 + 100 + 1 + 10, 0.5 + 0 + 2 + 20] = [111.5, 22.5]
//   rank 0 t1: [0.25 + 3, 0.25 + 4]                   = [3.25, 4.25]
//   rank 0 t2: [1 + 0 + 256, 1 - 1 + 40]              = [257 -> 256, 40]
//              (257 needs 9 significant bits; it is the tie of 256 and 258 and rounds to even 256)
//   rank 1 t0: [-1 + 50, -2 + 60]                     = [49, 58]
//   rank 1 t1: received by nobody: its bias1          = [8, 8]
//   rank 1 t2: [0.5 + 5 + 70, 0.5 + 6 + 80]           = [75.5, 86.5]
// Received weights (as dispatch produced them) sum back to the originals:
//   rank 0: [0.5, 0] + [0, 0.25] = [0.5, 0.25]; [1, 0]; [0.75, 0.125]
//   rank 1: [0.5, 0.5]; nobody -> [0, 0]; [0.375, 0] + [0, 0.625] = [0.375, 0.625]

const std::vector<HtRoute> kHandRoutes = {{{0, 0, 1}, {0, 1, 2}}, {{0, 0, 1, 1}, {0, 2, 0, 2}}};

std::vector<HtCombineRankInput> hand_inputs() {
  std::vector<HtCombineRankInput> inputs(2);
  inputs[0].x = bf16_of({1, 2, 3, 4, 5, 6});
  inputs[0].topk_weights = {0.5f, 0, 1.0f, 0, 0.375f, 0};
  inputs[0].bias0 = bf16_of({0.5f, 0.5f, 0.25f, 0.25f, 1, 1});
  inputs[0].bias1 = bf16_of({100, 0, 0, 0, 0, -1});
  inputs[1].x = bf16_of({10, 20, 256, 40, 50, 60, 70, 80});
  inputs[1].topk_weights = {0, 0.25f, 0.75f, 0.125f, 0.5f, 0.5f, 0, 0.625f};
  inputs[1].bias1 = bf16_of({-1, -2, 8, 8, 0.5f, 0.5f});
  return inputs;
}

TEST(ReferenceHtCombine, HandScenarioWithBiasesAndWeights) {
  const std::vector<HtCombineRankOutput> out = ht_combine(2, 2, {3, 3}, kHandRoutes, hand_inputs());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].out, bf16_of({111.5f, 22.5f, 3.25f, 4.25f, 256, 40}));
  EXPECT_EQ(out[0].topk_weights, (std::vector<float>{0.5f, 0.25f, 1.0f, 0, 0.75f, 0.125f}));
  EXPECT_EQ(out[1].out, bf16_of({49, 58, 8, 8, 75.5f, 86.5f}));
  EXPECT_EQ(out[1].topk_weights, (std::vector<float>{0.5f, 0.5f, 0, 0, 0.375f, 0.625f}));
}

// Without biases and weights: the plain sums, and a token nobody received is zero.
TEST(ReferenceHtCombine, HandScenarioWithoutBiasesOrWeights) {
  std::vector<HtCombineRankInput> inputs = hand_inputs();
  for (HtCombineRankInput& in : inputs) {
    in.bias0.clear();
    in.bias1.clear();
    in.topk_weights.clear();
  }
  const std::vector<HtCombineRankOutput> out = ht_combine(2, 2, {3, 3}, kHandRoutes, inputs);
  EXPECT_EQ(out[0].out, bf16_of({11, 22, 3, 4, 256, 40}));
  EXPECT_EQ(out[1].out, bf16_of({50, 60, 0, 0, 75, 86}));
  EXPECT_TRUE(out[0].topk_weights.empty());
  EXPECT_TRUE(out[1].topk_weights.empty());
}

// Worst-case mode hands combine padded inputs: rows past the route are ignored.
TEST(ReferenceHtCombine, IgnoresPaddingRows) {
  std::vector<HtCombineRankInput> inputs = hand_inputs();
  for (HtCombineRankInput& in : inputs) {
    for (int i = 0; i < 4; ++i) in.x.push_back(float_to_bf16(1000));
    for (int i = 0; i < 4; ++i) in.topk_weights.push_back(1000);
  }
  const std::vector<HtCombineRankOutput> out = ht_combine(2, 2, {3, 3}, kHandRoutes, inputs);
  EXPECT_EQ(out[0].out, bf16_of({111.5f, 22.5f, 3.25f, 4.25f, 256, 40}));
  EXPECT_EQ(out[1].topk_weights, (std::vector<float>{0.5f, 0.5f, 0, 0, 0.375f, 0.625f}));
}

// ---- properties and pressure --------------------------------------------------------------------

// combine(dispatch(x)) == x * (number of ranks the token reached), with the original weights back
// (0 in empty slots). Exact: x values are m * 2^p with |m| <= 15 (see random_exact_bf16), so x
// times at most 16 ranks stays exact in BF16. Routing: 30% pinned to rank 0, 10% empty slots, 10%
// repeated experts, a token that goes nowhere (comes back 0), the last rank with no tokens.
TEST(ReferenceHtCombine, CombineOfDispatchCountsRanksReached) {
  std::mt19937 rng(99);
  const testing::RoutingOptions routing{
      .pinned_fraction = 0.3, .masked_fraction = 0.1, .duplicate_fraction = 0.1, .one_token_nowhere = true};
  for (const int num_ranks : {2, 4, 8, 16}) {
    const Geometry geometry{.num_ranks = num_ranks, .num_experts = num_ranks * 3, .ranks_per_domain = 1};
    const int64_t hidden = 16;
    const int num_topk = 6;
    std::vector<HtRankInput> inputs(num_ranks);
    std::vector<std::vector<uint16_t>> x(num_ranks);
    std::vector<int64_t> num_tokens(num_ranks);
    for (int s = 0; s < num_ranks; ++s) {
      HtRankInput& in = inputs[s];
      in.num_tokens = s == num_ranks - 1 ? 0 : 10 + 7 * s;
      in.num_topk = num_topk;
      in.topk_idx = testing::random_topk(rng, geometry, in.num_tokens, num_topk, routing);
      in.topk_weights = testing::random_weights(rng, in.num_tokens * num_topk);
      x[s] = testing::random_exact_bf16(rng, in.num_tokens * hidden);
      in.row_bytes = hidden * 2;
      in.x = testing::to_bytes(x[s]);
      num_tokens[s] = in.num_tokens;
    }
    const std::vector<HtRankOutput> dispatched = ht_dispatch(geometry, inputs, HtDispatchOptions{});
    std::vector<HtRoute> routes;
    std::vector<HtCombineRankInput> combine_inputs(num_ranks);
    for (int d = 0; d < num_ranks; ++d) {
      routes.push_back(dispatched[d].route);
      combine_inputs[d].x = testing::from_bytes(dispatched[d].recv_x);
      combine_inputs[d].topk_weights = dispatched[d].recv_topk_weights;
    }
    const std::vector<HtCombineRankOutput> out =
        ht_combine(hidden, num_topk, num_tokens, routes, combine_inputs);

    for (int s = 0; s < num_ranks; ++s) {
      const Layout layout = get_dispatch_layout(geometry, inputs[s].topk_idx, num_tokens[s], num_topk);
      for (int64_t t = 0; t < num_tokens[s]; ++t) {
        int reached = 0;
        for (int r = 0; r < num_ranks; ++r) reached += layout.is_token_in_rank[t * num_ranks + r];
        for (int64_t h = 0; h < hidden; ++h) {
          ASSERT_EQ(bf16_to_float(out[s].out[t * hidden + h]), reached * bf16_to_float(x[s][t * hidden + h]))
              << "R=" << num_ranks << " rank " << s << " token " << t;
        }
        for (int k = 0; k < num_topk; ++k) {
          const bool selected = inputs[s].topk_idx[t * num_topk + k] >= 0;
          ASSERT_EQ(out[s].topk_weights[t * num_topk + k],
                    selected ? inputs[s].topk_weights[t * num_topk + k] : 0);
        }
      }
    }
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ReferenceHtCombine, RejectsBadArguments) {
  expect_invalid_argument([&] { ht_combine(0, 2, {3, 3}, kHandRoutes, hand_inputs()); }, "hidden");
  expect_invalid_argument([&] { ht_combine(2, 2, {3}, kHandRoutes, hand_inputs()); }, "routes");
  // Rank 1 has 2 tokens, but rank 0 received its token 2.
  expect_invalid_argument(
      [&] {
        ht_combine(2, 2, {3, 2}, kHandRoutes, hand_inputs());
      },
      "routes[0].src_token");
  {
    std::vector<HtCombineRankInput> inputs = hand_inputs();
    inputs[1].x.resize(6);  // 3 rows for a route of 4
    expect_invalid_argument([&] { ht_combine(2, 2, {3, 3}, kHandRoutes, inputs); }, "inputs[1].x");
  }
  {
    std::vector<HtCombineRankInput> inputs = hand_inputs();
    inputs[0].bias1.pop_back();
    expect_invalid_argument([&] { ht_combine(2, 2, {3, 3}, kHandRoutes, inputs); }, "inputs[0].bias1");
  }
  {
    std::vector<HtCombineRankInput> inputs = hand_inputs();
    inputs[1].topk_weights.clear();  // rank 0 gives weights, rank 1 (4 rows) does not
    expect_invalid_argument([&] { ht_combine(2, 2, {3, 3}, kHandRoutes, inputs); }, "inputs[1].topk_weights");
  }
  {
    std::vector<HtRoute> routes = kHandRoutes;
    routes[1].src_token[1] = 0;  // (0,0) twice on rank 1
    expect_invalid_argument([&] { ht_combine(2, 2, {3, 3}, routes, hand_inputs()); }, "routes[1]");
  }
}

}  // namespace
}  // namespace epcomm::ref
