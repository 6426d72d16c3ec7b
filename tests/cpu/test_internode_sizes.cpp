// Region sizes of the multi-domain mode (internode/md_sizes.hpp): the default ring configuration
// (the analogue of the reference library's config tables), the hints for both regions, the bytes
// they give back, and the refusals of undersized regions with the bytes needed, for many (G, D).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cpu/expect_error.hpp"
#include "internode/md_args.hpp"
#include "internode/md_model.hpp"
#include "internode/md_sizes.hpp"

namespace epcomm {
namespace {

using test::expect_arg_error;

MdShape ht_dsv3(int G, int D, bool fp8) {
  return MdShape{.num_tokens = 4096,
                 .hidden = 7168,
                 .num_topk = 8,
                 .num_experts = G * D * (G * D >= 256 ? 1 : 256 / (G * D)),
                 .ranks_per_domain = G,
                 .num_domains = D,
                 .fp8 = fp8};
}

const std::vector<std::pair<int, int>> kShapes = {{8, 2},  {8, 4},  {8, 8}, {8, 16}, {8, 256}, {4, 3},
                                                  {1, 64}, {72, 2}, {2, 2}, {4, 2},  {2, 4}};

TEST(InternodeSizes, TheHintHoldsItsConfigurationForBothOperations) {
  for (const auto& [G, D] : kShapes) {
    for (bool fp8 : {false, true}) {
      for (int num_sms : {2, 24, 132}) {
        const MdShape shape = ht_dsv3(G, D, fp8);
        const MdRingConfig config = md_ring_config(shape, num_sms);
        SCOPED_TRACE(testing::Message() << G << "x" << D << (fp8 ? " FP8" : " BF16") << " sms " << num_sms
                                        << ": C " << config.num_channels << " N " << config.ring_slots);
        EXPECT_EQ(config.num_channels, std::min(num_sms / 2, kMdMaxChannels));
        EXPECT_GE(config.ring_slots, kMdMinRingSlots);
        EXPECT_LE(config.ring_slots, kMdDefaultRingSlots);
        const std::int64_t bytes = md_rdma_bytes_hint(shape, config);
        for (MdOp op : {kMdOpDispatch, kMdOpCombine}) {
          const MdRingConfig fit = md_fit_rdma(bytes, shape, config.num_channels, config.staging_slots, op);
          EXPECT_GE(fit.ring_slots, config.ring_slots) << "op " << op;
        }
      }
    }
  }
}

TEST(InternodeSizes, RingsStayWithinTheBudgetUnlessTheMinimumNeedsMore) {
  for (const auto& [G, D] : kShapes) {
    const MdShape shape = ht_dsv3(G, D, false);
    const MdRingConfig config = md_ring_config(shape, 24);
    const std::size_t stride = std::max(md_dispatch_slot(shape).stride, md_combine_slot(shape).stride);
    const auto rings = static_cast<std::int64_t>(
        (stride + 8) * static_cast<std::size_t>((D - 1) * config.num_channels * config.ring_slots));
    if (config.ring_slots > kMdMinRingSlots) EXPECT_LE(rings, kMdDefaultRingBudget) << G << "x" << D;
  }
}

// The doc's table (docs/multi_domain.md, "Sizes"): ht-dsv3 BF16 with 24 SMs, 8-GPU domains.
TEST(InternodeSizes, HtDsv3HintsOfTheDoc) {
  struct Row {
    int D, channels, ring_slots;
    double rdma_mib, nvl_worst_mib, nvl_expected_mib;  // num_rdma_bytes; num_nvl_bytes for R x T rows,
                                                       // and for the rows uniform routing brings
  };
  const std::vector<Row> doc = {{2, 12, 128, 52.8, 902.3, 367.9},
                                {4, 12, 128, 137.2, 1804.5, 409.8},
                                {8, 12, 128, 306.2, 3609.0, 432.8},
                                {256, 12, 12, 1028.0, 115488.0, 451.1}};
  std::printf("D  C  N  num_rdma_bytes MiB | num_nvl_bytes MiB: R x T rows, expected rows\n");
  for (const Row& row : doc) {
    const MdShape shape = ht_dsv3(8, row.D, false);
    const MdRingConfig config = md_ring_config(shape, 24);
    const auto expected_rows =
        static_cast<std::int64_t>(std::ceil(shape.num_tokens * md_traffic(shape).odds.ranks_per_token));
    const double mib = 1048576.0;
    const double rdma = md_rdma_bytes_hint(shape, config) / mib;
    const double worst = md_nvl_bytes_hint(shape, md_worst_recv_rows(shape)) / mib;
    const double expected = md_nvl_bytes_hint(shape, expected_rows) / mib;
    std::printf("%d %d %d %.1f | %.1f %.1f (%lld rows)\n", row.D, config.num_channels, config.ring_slots,
                rdma, worst, expected, static_cast<long long>(expected_rows));
    SCOPED_TRACE(testing::Message() << "D=" << row.D);
    EXPECT_EQ(config.num_channels, row.channels);
    EXPECT_EQ(config.ring_slots, row.ring_slots);
    EXPECT_NEAR(rdma, row.rdma_mib, 0.05);
    EXPECT_NEAR(worst, row.nvl_worst_mib, 0.05);
    EXPECT_NEAR(expected, row.nvl_expected_mib, 0.05);
  }
}

TEST(InternodeSizes, OneDomainHasNoRings) {
  const MdShape shape = ht_dsv3(8, 1, false);
  EXPECT_EQ(md_ring_config(shape, 24).ring_slots, 0);
  EXPECT_EQ(md_fit_rdma(0, shape, 12, 32, kMdOpDispatch).ring_slots, 0);
}

TEST(InternodeSizes, AnUndersizedSymmetricRegionNamesTheBytesNeeded) {
  for (const auto& [G, D] : kShapes) {
    if (D == 1) continue;
    const MdShape shape = ht_dsv3(G, D, false);
    for (MdOp op : {kMdOpDispatch, kMdOpCombine}) {
      const MdSymmetricLayout least =
          MdSymmetricLayout::make(D, G, 12, kMdMinRingSlots, 32,
                                  op == kMdOpDispatch ? md_dispatch_slot(shape) : md_combine_slot(shape));
      const auto needed = static_cast<std::int64_t>(least.total_bytes());
      expect_arg_error([&] { md_fit_rdma(needed - 1, shape, 12, 32, op); },
                       "num_rdma_bytes: " + std::to_string(needed - 1) + " bytes hold");
      expect_arg_error([&] { md_fit_rdma(needed - 1, shape, 12, 32, op); },
                       "at least 4 are needed: " + std::to_string(needed) + " bytes");
      EXPECT_EQ(md_fit_rdma(needed, shape, 12, 32, op).ring_slots, kMdMinRingSlots);
    }
  }
}

TEST(InternodeSizes, NvlinkRegionHoldsTheRowsItIsSizedFor) {
  for (const auto& [G, D] : kShapes) {
    for (bool fp8 : {false, true}) {
      MdShape shape = ht_dsv3(G, D, fp8);
      shape.num_tokens = 64;  // keep R x T small enough to sweep
      for (std::int64_t rows :
           {std::int64_t{0}, std::int64_t{1}, std::int64_t{1000}, md_worst_recv_rows(shape)}) {
        const std::int64_t bytes = md_nvl_bytes_hint(shape, rows);
        EXPECT_NO_THROW(check_md_nvl_bytes(bytes, shape, rows)) << G << "x" << D << " rows " << rows;
        if (rows > 0) {
          expect_arg_error(
              [&] { check_md_nvl_bytes(bytes - 200, shape, rows); },
              "this operation needs " + std::to_string(rows) + ": " + std::to_string(bytes) + " bytes");
        }
      }
      EXPECT_EQ(md_worst_recv_rows(shape), static_cast<std::int64_t>(G) * D * 64);
    }
  }
}

// Combine stages each received row, its weights and its source token (MdCombineNvl): the sections
// are aligned, disjoint and inside the data area, and the hint's bytes hold the rows.
TEST(InternodeSizes, CombineStagingSectionsAreDisjointAndHoldTheHintsRows) {
  for (std::int64_t hidden : {std::int64_t{8}, std::int64_t{2048}, std::int64_t{7168}}) {
    for (int k : {0, 1, 8, 32}) {
      for (std::size_t bytes :
           {std::size_t{0}, std::size_t{1000}, std::size_t{1} << 20, std::size_t{3} << 29}) {
        const MdCombineNvl l = MdCombineNvl::make(bytes, hidden, k);
        SCOPED_TRACE(testing::Message() << "hidden " << hidden << " k " << k << " bytes " << bytes);
        const auto cap = static_cast<std::size_t>(l.cap_rows);
        EXPECT_EQ(l.weights % kSectionAlignment, 0u);
        EXPECT_EQ(l.src_idx % kSectionAlignment, 0u);
        EXPECT_LE(l.x + cap * static_cast<std::size_t>(hidden) * 2, l.weights);
        EXPECT_LE(l.weights + cap * 4u * static_cast<std::size_t>(k), l.src_idx);
        if (cap > 0) EXPECT_LE(l.src_idx + cap * 4u, bytes);
        // The capacity is the most the bytes hold: one more row and the sections' slack exceed them.
        const std::size_t per_row =
            static_cast<std::size_t>(hidden) * 2 + 4u * static_cast<std::size_t>(k) + 4u;
        EXPECT_GT((cap + 1) * per_row + 3 * kSectionAlignment, bytes);
      }
      const MdShape shape{.num_tokens = 64,
                          .hidden = hidden,
                          .num_topk = k,
                          .num_experts = 8,
                          .ranks_per_domain = 2,
                          .num_domains = 2};
      for (std::int64_t rows : {std::int64_t{1}, std::int64_t{777}}) {
        const MdCombineNvl l =
            MdCombineNvl::make(static_cast<std::size_t>(md_nvl_bytes_hint(shape, rows)), hidden, k);
        EXPECT_GE(l.cap_rows, rows) << "hidden " << hidden << " k " << k;
      }
    }
  }
}

TEST(InternodeSizes, ShapesOutsideTheModeAreRefusedByName) {
  MdShape s = ht_dsv3(8, 2, true);
  s.hidden = 7000;
  expect_arg_error([&] { md_dispatch_slot(s); },
                   "hidden: expected 1 to 131072, a multiple of 128 (FP8 scales), got 7000");
  s = ht_dsv3(8, 2, false);
  s.ranks_per_domain = 73;
  expect_arg_error([&] { md_ring_config(s, 24); }, "ranks_per_domain: expected 1 to 72");
  s = ht_dsv3(8, 2, false);
  s.num_domains = 257;
  s.num_experts = 8 * 257;
  expect_arg_error([&] { md_worst_recv_rows(s); }, "num_ranks: at most 256 domains");
  s = ht_dsv3(8, 2, false);
  s.num_experts = 100;
  expect_arg_error([&] { md_nvl_bytes_hint(s, 1); },
                   "num_experts: expected a positive multiple of num_ranks=16");
  s.num_experts = 16 * 300;
  expect_arg_error([&] { md_nvl_bytes_hint(s, 1); }, "num_experts: at most 256 local experts per rank");
  expect_arg_error([&] { md_ring_config(ht_dsv3(8, 2, false), 1); }, "num_sms: expected >= 2");
  expect_arg_error(
      [&] {
        md_rdma_bytes_hint(ht_dsv3(8, 2, false), {65, 4, 1});
      },
      "num_channels: expected 1 to 64");
  expect_arg_error([&] { md_nvl_bytes_hint(ht_dsv3(8, 2, false), -1); }, "rows: expected 0 to ");
}

}  // namespace
}  // namespace epcomm
