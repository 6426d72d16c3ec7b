// Rank masking in the CPU reference (SPEC "Rank masking"), the oracle of the masked GPU tests: a
// masked rank holds no tokens and no experts; slots naming its experts behave as -1.
//
// Hand-worked scenario: R = 3 ranks, E = 6 experts (experts 2r and 2r+1 on rank r), rank 2 masked.
//   rank 0: t0 -> {0, 4}  t1 -> {5, 3}  t2 -> {4, 5}   (t2 reaches only rank 2: routed nowhere)
//   rank 1: t0 -> {1, 2}  t1 -> {-1, 4}
//   rank 2: t0 -> {0, 1}                               (masked: holds no tokens)
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "intranode/dispatch_handle.hpp"
#include "test_reference_common.hpp"

namespace epcomm::ref::testing {
namespace {

const Geometry kGeometry{.num_ranks = 3, .num_experts = 6, .ranks_per_domain = 3};
const std::vector<uint8_t> kRank2Masked{0, 0, 1};
constexpr int64_t kHidden = 4;

HtRankInput ht_input(std::vector<int64_t> topk_idx, float value) {
  HtRankInput in;
  in.num_topk = 2;
  in.num_tokens = static_cast<int64_t>(topk_idx.size()) / 2;
  in.topk_idx = std::move(topk_idx);
  in.topk_weights.assign(in.topk_idx.size(), 0.5f);
  in.row_bytes = kHidden * 2;
  std::vector<float> x;
  for (int64_t t = 0; t < in.num_tokens; ++t)
    for (int64_t c = 0; c < kHidden; ++c) x.push_back(value + static_cast<float>(t));
  in.x = to_bytes(bf16_of(x));
  return in;
}

std::vector<HtRankInput> hand_inputs() {
  return {ht_input({0, 4, 5, 3, 4, 5}, 1.0f), ht_input({1, 2, -1, 4}, 10.0f), ht_input({0, 1}, 100.0f)};
}

TEST(RankMaskReference, SlotsNamingAMaskedRanksExpertsBecomeMinusOne) {
  EXPECT_EQ(mask_topk(kGeometry, {0, 4, 5, 3, 4, 5}, kRank2Masked),
            (std::vector<int64_t>{0, -1, -1, 3, -1, -1}));
  EXPECT_EQ(mask_topk(kGeometry, {1, 2, -1, 4}, kRank2Masked), (std::vector<int64_t>{1, 2, -1, -1}));
  // Nothing masked: unchanged.
  EXPECT_EQ(mask_topk(kGeometry, {0, 4, 5, 3}, {0, 0, 0}), (std::vector<int64_t>{0, 4, 5, 3}));
}

TEST(RankMaskReference, AMaskedRankHoldsNoTokens) {
  const std::vector<HtRankInput> masked = mask_ranks(kGeometry, hand_inputs(), kRank2Masked);
  EXPECT_EQ(masked[2].num_tokens, 0);
  EXPECT_TRUE(masked[2].x.empty());
  EXPECT_TRUE(masked[2].topk_idx.empty());
  EXPECT_EQ(masked[0].num_tokens, 3);  // live ranks keep every token, even one now routed nowhere
  EXPECT_EQ(masked[0].topk_idx, (std::vector<int64_t>{0, -1, -1, 3, -1, -1}));
  EXPECT_EQ(masked[0].x, hand_inputs()[0].x);
}

TEST(RankMaskReference, LayoutCountsNothingForAMaskedRank) {
  const Layout layout =
      get_dispatch_layout(kGeometry, mask_topk(kGeometry, {0, 4, 5, 3, 4, 5}, kRank2Masked), 3, 2);
  EXPECT_EQ(layout.num_tokens_per_rank, (std::vector<int32_t>{1, 1, 0}));
  EXPECT_EQ(layout.num_tokens_per_expert, (std::vector<int32_t>{1, 0, 0, 1, 0, 0}));
  EXPECT_EQ(layout.is_token_in_rank, (std::vector<uint8_t>{1, 0, 0, 0, 1, 0, 0, 0, 0}));
}

TEST(RankMaskReference, HtDispatchSendsNothingToOrFromAMaskedRank) {
  const std::vector<HtRankOutput> out =
      ht_dispatch(kGeometry, mask_ranks(kGeometry, hand_inputs(), kRank2Masked), {});
  // Rank 0 gets its own t0 and rank 1's t0 (expert 1); rank 1 gets rank 0's t1 (expert 3) and its
  // own t0 (expert 2); rank 2 gets nothing. Rank 2's token (experts 0, 1) never arrives.
  EXPECT_EQ(out[0].route.src_rank, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(out[0].route.src_token, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(out[0].recv_topk_idx, (std::vector<int64_t>{0, -1, 1, -1}));
  EXPECT_EQ(out[1].route.src_rank, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(out[1].route.src_token, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(out[1].recv_topk_idx, (std::vector<int64_t>{-1, 1, -1, 0}));
  EXPECT_EQ(out[1].recv_topk_weights, (std::vector<float>{0.0f, 0.5f, 0.0f, 0.5f}));
  EXPECT_EQ(out[2].num_recv_tokens, 0);
  EXPECT_EQ(out[0].num_recv_tokens_per_expert, (std::vector<int32_t>{1, 1}));
}

// Property over random routing: on every live rank, combine(dispatch) of the masked inputs gives
// each token x times the live ranks its unmasked slots reach (a token reaching only masked ranks
// comes back as 0), so nothing is taken from a masked rank.
TEST(RankMaskReference, HtCombineTakesNothingFromAMaskedRank) {
  const Geometry g{.num_ranks = 4, .num_experts = 16, .ranks_per_domain = 4};
  const std::vector<uint8_t> masked{0, 1, 0, 0};
  std::mt19937 rng(5);
  std::vector<HtRankInput> inputs(4);
  for (int r = 0; r < 4; ++r) {
    HtRankInput& in = inputs[static_cast<size_t>(r)];
    in.num_tokens = 24;
    in.num_topk = 3;
    in.topk_idx = random_topk(rng, g, in.num_tokens, in.num_topk, {.masked_fraction = 0.1});
    in.topk_weights = random_weights(rng, in.topk_idx.size());
    in.row_bytes = kHidden * 2;
    in.x = to_bytes(random_exact_bf16(rng, static_cast<size_t>(in.num_tokens * kHidden)));
  }
  const std::vector<HtRankInput> live = mask_ranks(g, inputs, masked);
  const std::vector<HtRankOutput> d = ht_dispatch(g, live, {});
  std::vector<HtRoute> routes;
  std::vector<HtCombineRankInput> back(4);
  std::vector<int64_t> tokens;
  for (int r = 0; r < 4; ++r) {
    routes.push_back(d[static_cast<size_t>(r)].route);
    back[static_cast<size_t>(r)].x = from_bytes(d[static_cast<size_t>(r)].recv_x);
    tokens.push_back(live[static_cast<size_t>(r)].num_tokens);
  }
  EXPECT_EQ(d[1].num_recv_tokens, 0);
  const std::vector<HtCombineRankOutput> c = ht_combine(kHidden, 3, tokens, routes, back);
  for (int r : {0, 2, 3}) {
    const HtRankInput& in = inputs[static_cast<size_t>(r)];
    const std::vector<float> x = floats_of(from_bytes(in.x));
    const std::vector<float> got = floats_of(c[static_cast<size_t>(r)].out);
    for (int64_t t = 0; t < in.num_tokens; ++t) {
      int reached = 0;
      for (int dst : {0, 2, 3}) {
        bool hit = false;
        for (int k = 0; k < 3; ++k) {
          const int64_t e = in.topk_idx[static_cast<size_t>(t * 3 + k)];
          hit = hit || (e >= 0 && g.rank_of_expert(e) == dst);
        }
        reached += hit ? 1 : 0;
      }
      for (int64_t ch = 0; ch < kHidden; ++ch)
        EXPECT_EQ(got[static_cast<size_t>(t * kHidden + ch)],
                  x[static_cast<size_t>(t * kHidden + ch)] * reached)
            << "rank " << r << " token " << t;
    }
  }
}

TEST(RankMaskReference, LlDispatchDeliversNothingToOrFromAMaskedRank) {
  std::mt19937 rng(9);
  std::vector<LlRankInput> inputs(3);
  for (auto& in : inputs) {
    in.num_tokens = 6;
    in.num_topk = 2;
    in.topk_idx = random_topk(rng, kGeometry, 6, 2, {});
    in.x = random_exact_bf16(rng, 6 * 128);
  }
  const std::vector<LlRankOutput> out =
      ll_dispatch(kGeometry, 128, 8, mask_ranks(kGeometry, inputs, kRank2Masked), {.use_fp8 = false});
  EXPECT_EQ(out[2].recv_count, (std::vector<int32_t>{0, 0}));
  for (int r : {0, 1}) {
    // Every row a live rank's expert receives comes from a live source; none from rank 2.
    for (int e = 0; e < 2; ++e)
      EXPECT_EQ(out[static_cast<size_t>(r)].layout_range[static_cast<size_t>(e * 3 + 2)] & 0xffffffff, 0)
          << "rank " << r << " expert " << e;
    int32_t want = 0;
    for (int s : {0, 1})
      for (int64_t e : inputs[static_cast<size_t>(s)].topk_idx)
        want += e >= 0 && kGeometry.rank_of_expert(e) == r;
    EXPECT_EQ(out[static_cast<size_t>(r)].recv_count[0] + out[static_cast<size_t>(r)].recv_count[1], want);
  }
}

TEST(RankMaskReference, RefusesAMaskOfTheWrongSizeNamingIt) {
  expect_invalid_argument([] { mask_topk(kGeometry, {0, 1}, {0, 1}); }, "masked");
  expect_invalid_argument([] { mask_ranks(kGeometry, hand_inputs(), {0, 0, 0, 1}); }, "masked");
  expect_invalid_argument([] { mask_topk(kGeometry, {0, 6}, kRank2Masked); }, "topk_idx");
}

// A handle remembers the mask its dispatch routed under; cached dispatch and combine refuse it
// once the mask changed (its routing would still name a rank masked since).
TEST(RankMaskHandle, AHandleFromBeforeTheMaskChangedIsRefusedNamingIt) {
  DispatchHandle::State h;
  h.mask_changes = 2;
  EXPECT_NO_THROW(check_handle_mask(h, 2, "combine"));
  expect_invalid_argument([&] { check_handle_mask(h, 3, "combine"); }, "handle: combine got a handle");
  expect_invalid_argument([&] { check_handle_mask(h, 0, "cached dispatch"); }, "dispatch again");
}

}  // namespace
}  // namespace epcomm::ref::testing
