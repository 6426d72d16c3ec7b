// Tests of src/reference/layout.cpp: Geometry::validate and get_dispatch_layout.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "epcomm/reference.hpp"
#include "test_reference_common.hpp"

namespace epcomm::ref {
namespace {

using testing::expect_invalid_argument;

// R = 2, E = 4 (rank 0: experts 0, 1; rank 1: experts 2, 3), one domain (G = 2), k = 2.
//   t0: [0, 1]   -> rank 0 only (two experts there, counted once)
//   t1: [1, 3]   -> ranks 0 and 1
//   t2: [-1, 2]  -> rank 1 (the -1 slot is ignored)
//   t3: [2, 2]   -> rank 1; expert 2 selected twice counts twice per expert, once per rank
// num_tokens_per_rank = [2 (t0, t1), 3 (t1, t2, t3)]; per domain = [4];
// num_tokens_per_expert = [1 (t0), 2 (t0, t1), 3 (t2, t3, t3), 1 (t1)].
TEST(ReferenceLayout, HandScenarioTwoRanks) {
  const Geometry geometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};
  const std::vector<int64_t> topk_idx = {0, 1, 1, 3, -1, 2, 2, 2};
  const Layout layout = get_dispatch_layout(geometry, topk_idx, 4, 2);
  EXPECT_EQ(layout.num_tokens_per_rank, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(layout.num_tokens_per_domain, (std::vector<int32_t>{4}));
  EXPECT_EQ(layout.num_tokens_per_expert, (std::vector<int32_t>{1, 2, 3, 1}));
  EXPECT_EQ(layout.is_token_in_rank, (std::vector<uint8_t>{1, 0, 1, 1, 0, 1, 0, 1}));
}

// R = 4, E = 8 (rank r: experts 2r, 2r+1), G = 2: domain 0 = ranks {0, 1}, domain 1 = {2, 3}.
//   t0: [0, 7]   -> ranks 0, 3 -> domains 0, 1
//   t1: [2, 3]   -> rank 1     -> domain 0
//   t2: [-1, -1] -> nowhere
// num_tokens_per_rank = [1, 1, 0, 1]; per domain = [2, 1];
// num_tokens_per_expert = [1, 0, 1, 1, 0, 0, 0, 1].
TEST(ReferenceLayout, HandScenarioTwoDomains) {
  const Geometry geometry{.num_ranks = 4, .num_experts = 8, .ranks_per_domain = 2};
  const std::vector<int64_t> topk_idx = {0, 7, 2, 3, -1, -1};
  const Layout layout = get_dispatch_layout(geometry, topk_idx, 3, 2);
  EXPECT_EQ(layout.num_tokens_per_rank, (std::vector<int32_t>{1, 1, 0, 1}));
  EXPECT_EQ(layout.num_tokens_per_domain, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(layout.num_tokens_per_expert, (std::vector<int32_t>{1, 0, 1, 1, 0, 0, 0, 1}));
  EXPECT_EQ(layout.is_token_in_rank, (std::vector<uint8_t>{1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0}));
}

TEST(ReferenceLayout, NoTokens) {
  const Geometry geometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 1};
  const Layout layout = get_dispatch_layout(geometry, {}, 0, 2);
  EXPECT_EQ(layout.num_tokens_per_rank, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(layout.num_tokens_per_domain, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(layout.num_tokens_per_expert, (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_TRUE(layout.is_token_in_rank.empty());
}

// Properties on skewed random routing: every non-(-1) slot lands in exactly one per-expert count;
// per-rank and per-domain counts are the column sums of is_token_in_rank (per domain: any rank of
// the domain); a token is in a rank iff some slot names an expert there.
TEST(ReferenceLayout, PropertiesOnSkewedRouting) {
  std::mt19937 rng(7);
  for (const int num_ranks : {4, 8, 16}) {
    const Geometry geometry{.num_ranks = num_ranks, .num_experts = num_ranks * 4, .ranks_per_domain = 2};
    const int64_t num_tokens = 100;
    const int num_topk = 4;
    const std::vector<int64_t> topk_idx = testing::random_topk(rng, geometry, num_tokens, num_topk,
                                                               {.pinned_fraction = 0.3,
                                                                .masked_fraction = 0.1,
                                                                .duplicate_fraction = 0.1,
                                                                .one_token_nowhere = true});
    const Layout layout = get_dispatch_layout(geometry, topk_idx, num_tokens, num_topk);

    int64_t selections = 0;
    for (const int64_t e : topk_idx) selections += e >= 0;
    int64_t expert_total = 0;
    for (const int32_t count : layout.num_tokens_per_expert) expert_total += count;
    EXPECT_EQ(expert_total, selections);

    std::vector<int32_t> per_rank(num_ranks, 0);
    std::vector<int32_t> per_domain(geometry.num_domains(), 0);
    for (int64_t t = 0; t < num_tokens; ++t) {
      std::vector<bool> domain_hit(geometry.num_domains(), false);
      for (int r = 0; r < num_ranks; ++r) {
        bool expected = false;
        for (int k = 0; k < num_topk; ++k) {
          const int64_t e = topk_idx[t * num_topk + k];
          expected = expected || (e >= 0 && e / geometry.num_local_experts() == r);
        }
        ASSERT_EQ(layout.is_token_in_rank[t * num_ranks + r], expected ? 1 : 0) << "t=" << t << " r=" << r;
        per_rank[r] += expected;
        if (expected) domain_hit[r / 2] = true;
      }
      for (int d = 0; d < geometry.num_domains(); ++d) per_domain[d] += domain_hit[d];
    }
    EXPECT_EQ(layout.num_tokens_per_rank, per_rank);
    EXPECT_EQ(layout.num_tokens_per_domain, per_domain);
    // Token 0 goes nowhere; the skew makes rank 0 the busiest.
    for (int r = 0; r < num_ranks; ++r) EXPECT_EQ(layout.is_token_in_rank[r], 0);
    for (int r = 1; r < num_ranks; ++r)
      EXPECT_GE(layout.num_tokens_per_rank[0], layout.num_tokens_per_rank[r]);
  }
}

TEST(ReferenceLayout, RejectsBadArguments) {
  const Geometry geometry{.num_ranks = 2, .num_experts = 4, .ranks_per_domain = 2};
  expect_invalid_argument([&] { get_dispatch_layout(geometry, {0, 4}, 1, 2); }, "topk_idx");     // == E
  expect_invalid_argument([&] { get_dispatch_layout(geometry, {0, -2}, 1, 2); }, "topk_idx");    // < -1
  expect_invalid_argument([&] { get_dispatch_layout(geometry, {0, 1, 2}, 2, 2); }, "topk_idx");  // size
  expect_invalid_argument([&] { get_dispatch_layout(geometry, {0, 1}, 1, 0); }, "num_topk");
  expect_invalid_argument(
      [&] {
        get_dispatch_layout(Geometry{.num_ranks = 2, .num_experts = 5, .ranks_per_domain = 2}, {0}, 1, 1);
      },
      "num_experts");
  expect_invalid_argument(
      [&] {
        get_dispatch_layout(Geometry{.num_ranks = 4, .num_experts = 8, .ranks_per_domain = 3}, {0}, 1, 1);
      },
      "ranks_per_domain");
  expect_invalid_argument(
      [&] {
        get_dispatch_layout(Geometry{.num_ranks = 0, .num_experts = 8, .ranks_per_domain = 1}, {0}, 1, 1);
      },
      "num_ranks");
}

}  // namespace
}  // namespace epcomm::ref
