// The traffic model of the multi-domain mode (internode/md_model.hpp): the routing odds against
// an exhaustive count and a sampled routing, and the ht-dsv3 figures docs/multi_domain.md quotes
// (the table the test prints is the doc's; the pinned values keep them from drifting apart).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "cpu/test_reference_common.hpp"
#include "internode/md_model.hpp"

namespace epcomm {
namespace {

MdShape ht_dsv3(int num_domains, bool fp8) {
  return MdShape{.num_tokens = 4096, .hidden = 7168, .num_topk = 8, .num_experts = 256, .ranks_per_domain = 8,
                 .num_domains = num_domains, .fp8 = fp8};
}

TEST(InternodeModel, OddsMatchAnExhaustiveCount) {
  // E = 12 experts on 2 domains of 3 ranks (2 experts per rank), top-3: all C(12, 3) = 220 picks.
  const int E = 12, k = 3, G = 3, D = 2, m = 2;
  double rank0 = 0, domain0 = 0, one_rank0 = 0, picks = 0;
  for (int a = 0; a < E; ++a)
    for (int b = a + 1; b < E; ++b)
      for (int c = b + 1; c < E; ++c) {
        std::set<int> ranks;
        for (int e : {a, b, c}) ranks.insert(e / m);
        int in_domain0 = 0;
        for (int r : ranks) in_domain0 += r / G == 0;
        rank0 += ranks.count(0);
        domain0 += in_domain0 > 0;
        one_rank0 += in_domain0 == 1;
        ++picks;
      }
  const MdRoutingOdds odds = md_uniform_routing(E, k, G, D);
  EXPECT_NEAR(odds.p_rank, rank0 / picks, 1e-12);
  EXPECT_NEAR(odds.p_domain, domain0 / picks, 1e-12);
  EXPECT_NEAR(odds.p_one_rank, one_rank0 / picks, 1e-12);
  EXPECT_NEAR(odds.domains_per_token, D * domain0 / picks, 1e-12);
  EXPECT_NEAR(odds.remote_domains_per_token, (D - 1) * domain0 / picks, 1e-12);
}

TEST(InternodeModel, OddsMatchASampledRouting) {
  for (int D : {2, 4, 8}) {
    const int G = 8, R = G * D, E = 256, k = 8;
    const ref::Geometry geometry{R, E, G};
    std::mt19937 rng(static_cast<unsigned>(D));
    const std::int64_t T = 20000;
    const std::vector<std::int64_t> topk = ref::testing::random_topk(rng, geometry, T, k, {});
    double domains = 0, ranks = 0, one_rank_domains = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      std::vector<int> per_domain(static_cast<std::size_t>(D), 0);
      std::set<int> seen;
      for (int s = 0; s < k; ++s) {
        const int r = geometry.rank_of_expert(topk[static_cast<std::size_t>(t * k + s)]);
        if (seen.insert(r).second) ++per_domain[static_cast<std::size_t>(r / G)];
      }
      ranks += static_cast<double>(seen.size());
      for (int n : per_domain) {
        domains += n > 0;
        one_rank_domains += n == 1;
      }
    }
    // Within 5 standard errors of a count of ~T x mean events (each at most k per token).
    const MdRoutingOdds odds = md_uniform_routing(E, k, G, D);
    auto near = [&](double model_mean, double sampled_sum) {
      return std::abs(model_mean - sampled_sum / T) <= 5.0 * std::sqrt(model_mean * k / T);
    };
    EXPECT_PRED2(near, odds.domains_per_token, domains) << "D=" << D;
    EXPECT_PRED2(near, odds.ranks_per_token, ranks) << "D=" << D;
    EXPECT_PRED2(near, odds.p_one_rank * D, one_rank_domains) << "D=" << D;
  }
}

TEST(InternodeModel, TrafficFollowsTheSlotFormats) {
  const MdTraffic t = md_traffic(ht_dsv3(4, false));
  EXPECT_EQ(t.dispatch_put_bytes, 14416.0);                              // md_slot.hpp: 14336 + 80
  EXPECT_EQ(t.combine_put_bytes[static_cast<int>(MdPartial::kFloat32)], 28704.0);  // 8 weights + 7168 f32
  EXPECT_EQ(t.combine_put_bytes[static_cast<int>(MdPartial::kBFloat16)], 14368.0);
  EXPECT_DOUBLE_EQ(t.nic_dispatch_bytes, t.nic_rows * 14416.0);
  EXPECT_DOUBLE_EQ(t.nic_rows, 4096 * t.odds.remote_domains_per_token);
  const double adaptive = t.combine_put_bytes[static_cast<int>(MdPartial::kAdaptive)];
  EXPECT_GT(adaptive, 14368.0);
  EXPECT_LT(adaptive, 28704.0);
  // One domain: nothing crosses a NIC.
  EXPECT_EQ(md_traffic(ht_dsv3(1, false)).nic_dispatch_bytes, 0.0);
  EXPECT_DOUBLE_EQ(md_transfer_us(50e6, 50.0), 1000.0);  // 50 MB at 50 GB/s: 1 ms
}

// The doc's table: docs/multi_domain.md, "Model".
TEST(InternodeModel, HtDsv3FiguresOfTheDoc) {
  // Per rank and operation, MB (1e6 bytes); to two decimals, as the doc gives them.
  struct Row {
    int ep;
    double domains, remote_domains;
    double nic_bf16, nic_fp8, combine_f32, combine_adaptive, combine_bf16;  // through its NIC
    double nvl_bf16, nvl_fp8, nvl_combine;                                  // to or from its domain's GPUs
    double ref_fp8, ref_combine;  // the reference library's accounting of the same operations
  };
  const std::vector<Row> doc = {
      {16, 1.9930, 0.9965, 58.84, 30.50, 117.16, 114.49, 58.65, 337.51, 175.16, 335.92, 60.34, 117.03},
      {32, 3.6142, 2.7107, 160.06, 82.96, 318.70, 265.07, 159.53, 375.97, 195.12, 374.20, 109.43, 212.23},
      {64, 5.2947, 4.6328, 273.56, 141.79, 544.69, 372.66, 272.65, 397.13, 206.10, 395.26, 160.31, 310.90},
  };
  std::printf("EP  domains/token remote/token | NIC MB: BF16 FP8 | combine f32 adaptive bf16 | NVLink MB: BF16 "
              "FP8 combine | reference-counted MB: FP8 dispatch, combine\n");
  for (const Row& row : doc) {
    const int D = row.ep / 8;
    const MdTraffic bf16 = md_traffic(ht_dsv3(D, false)), fp8 = md_traffic(ht_dsv3(D, true));
    const double mb = 1e6;
    std::printf("%d %.4f %.4f | %.2f %.2f | %.2f %.2f %.2f | %.2f %.2f %.2f | %.2f %.2f\n", row.ep,
                bf16.odds.domains_per_token, bf16.odds.remote_domains_per_token, bf16.nic_dispatch_bytes / mb,
                fp8.nic_dispatch_bytes / mb, bf16.nic_combine_bytes[0] / mb, bf16.nic_combine_bytes[1] / mb,
                bf16.nic_combine_bytes[2] / mb, bf16.nvl_dispatch_bytes / mb, fp8.nvl_dispatch_bytes / mb,
                bf16.nvl_combine_bytes / mb, fp8.reference_counted_dispatch_bytes / mb,
                bf16.reference_counted_combine_bytes / mb);
    SCOPED_TRACE(testing::Message() << "EP" << row.ep);
    EXPECT_NEAR(bf16.odds.domains_per_token, row.domains, 5e-5);
    EXPECT_NEAR(bf16.odds.remote_domains_per_token, row.remote_domains, 5e-5);
    EXPECT_NEAR(bf16.nic_dispatch_bytes / mb, row.nic_bf16, 0.005);
    EXPECT_NEAR(fp8.nic_dispatch_bytes / mb, row.nic_fp8, 0.005);
    EXPECT_NEAR(bf16.nic_combine_bytes[0] / mb, row.combine_f32, 0.005);
    EXPECT_NEAR(bf16.nic_combine_bytes[1] / mb, row.combine_adaptive, 0.005);
    EXPECT_NEAR(bf16.nic_combine_bytes[2] / mb, row.combine_bf16, 0.005);
    EXPECT_NEAR(bf16.nvl_dispatch_bytes / mb, row.nvl_bf16, 0.005);
    EXPECT_NEAR(fp8.nvl_dispatch_bytes / mb, row.nvl_fp8, 0.005);
    EXPECT_NEAR(bf16.nvl_combine_bytes / mb, row.nvl_combine, 0.005);
    EXPECT_NEAR(fp8.reference_counted_dispatch_bytes / mb, row.ref_fp8, 0.005);
    EXPECT_NEAR(bf16.reference_counted_combine_bytes / mb, row.ref_combine, 0.005);
  }
}

}  // namespace
}  // namespace epcomm
