// Host math of the high-throughput path for domains of many sizes (2 to 72 ranks): SM budget
// split, channels, region layouts (aligned, disjoint, in bounds) and the row-capacity checks.
#include <gtest/gtest.h>

#include <limits>

#include <algorithm>
#include <numeric>
#include <vector>

#include "epcomm/error.hpp"
#include "intranode/ht_layout.hpp"
#include "intranode/ht_layout_notify.hpp"
#include "intranode/ht_plan.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {
namespace {

class PerDomainSize : public ::testing::TestWithParam<int> {};

// The plan itself takes no domain size; G enters through notify's mailbox, which holds G rank
// counts and one count per channel beside the local experts' counts. Catches (issue 18, item 7):
// the parameter was unused here, so six identical runs claimed coverage of 2 to 72 ranks; now each
// domain size checks every plan's channels against its own mailbox.
TEST_P(PerDomainSize, DispatchPlanCoversEveryTokenWithWarpChannels) {
  const int G = GetParam();
  for (int sms : {2, 3, 8, 24, 64, 132, kMaxBlocks}) {
    for (std::int64_t T : {0, 1, 31, 32, 33, 4096, 8191, 65536}) {
      const HtDispatchPlan p = plan_ht_dispatch(sms, kMaxBlocks, T);
      EXPECT_EQ(p.num_blocks, sms);
      EXPECT_EQ(p.num_senders, sms);  // every block sends, then copies out
      EXPECT_EQ(p.num_channels, p.num_senders * kHtWarpsPerBlock);
      EXPECT_LE(p.num_channels, kMaxChannels);
      EXPECT_GE(p.tokens_per_channel, 1);
      EXPECT_GE(static_cast<std::int64_t>(p.num_channels) * p.tokens_per_channel, T)
          << "sms " << sms << " T " << T;
      // No channel is wasted past the last token by more than one channel's worth.
      EXPECT_LT(static_cast<std::int64_t>(p.num_channels) * p.tokens_per_channel, T + p.num_channels + 1);
      EXPECT_GE(max_local_experts(G, p.num_channels), 1024) << "G " << G << " sms " << sms;
    }
  }
}

// G drives the mailbox check, as above, and the tokens (4096 * G, from 4096 to 294912), so that no
// two domain sizes run the same plans.
TEST_P(PerDomainSize, CachedDispatchKeepsTheHandlesChannels) {
  const int G = GetParam();
  const std::int64_t T = 4096 * static_cast<std::int64_t>(G);
  const HtDispatchPlan first = plan_ht_dispatch(24, 132, T);
  const HtDispatchPlan again = plan_ht_dispatch(30, 132, T, first.num_channels);
  EXPECT_GE(max_local_experts(G, first.num_channels), 1024);
  EXPECT_GE(static_cast<std::int64_t>(again.num_channels) * again.tokens_per_channel, T);
  EXPECT_EQ(again.num_channels, first.num_channels);
  EXPECT_EQ(again.tokens_per_channel, first.tokens_per_channel);
  EXPECT_EQ(again.num_senders, first.num_senders);  // the other 6 blocks only copy out
  // The senders copy out too, so the handle's blocks may be the whole budget, never more.
  const HtDispatchPlan same = plan_ht_dispatch(first.num_senders, 132, T, first.num_channels);
  EXPECT_EQ(same.num_senders, first.num_senders);
  EXPECT_THROW(plan_ht_dispatch(first.num_senders - 1, 132, T, first.num_channels), Error);
}

TEST(HtPlan, PlansGiveEveryBlockBothRoles) {
  for (int sms : {2, 3, 24, 132, kMaxBlocks}) {
    const HtDispatchPlan d = plan_ht_dispatch(sms, kMaxBlocks, 4096);
    EXPECT_EQ(d.num_senders, sms);
    EXPECT_EQ(d.num_channels, sms * kHtWarpsPerBlock);
    EXPECT_LE(d.num_channels, kMaxChannels);
    EXPECT_GE(static_cast<std::int64_t>(d.num_channels) * d.tokens_per_channel, 4096);
    const HtCombinePlan c = plan_ht_combine(sms, kMaxBlocks);
    EXPECT_EQ(c.num_senders, sms);
    EXPECT_EQ(c.num_shares, sms * kHtWarpsPerBlock);
  }
}

TEST_P(PerDomainSize, MailboxHoldsTheCountsOfUpTo1024LocalExperts) {
  const int G = GetParam();
  EXPECT_GE(max_local_experts(G, kMaxChannels), 1024);
}

TEST_P(PerDomainSize, RowsReceivedAndReturnedAreColumnAndRowSums) {
  const int G = GetParam();
  std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d) counts[static_cast<std::size_t>(s * G + d)] = 1000 * s + d;
  const auto received = rows_received(counts.data(), G);
  const auto returned = rows_returned(counts.data(), G);
  for (int d = 0; d < G; ++d) {
    std::int64_t column = 0, row = 0;
    for (int s = 0; s < G; ++s) {
      column += 1000 * s + d;
      row += 1000 * d + s;
    }
    EXPECT_EQ(received[static_cast<std::size_t>(d)], column);
    EXPECT_EQ(returned[static_cast<std::size_t>(d)], row);
  }
  // Conservation: every row sent is received once.
  EXPECT_EQ(std::accumulate(received.begin(), received.end(), std::int64_t{0}),
            std::accumulate(returned.begin(), returned.end(), std::int64_t{0}));
}

TEST_P(PerDomainSize, CombineRegionHoldsReturnedRowsForPushAndReceivedRowsForPull) {
  const int G = GetParam();
  std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d) counts[static_cast<std::size_t>(s * G + d)] = 7 * s + 3 * d + 1;
  EXPECT_EQ(combine_region_rows(counts.data(), G, /*pull=*/false), rows_returned(counts.data(), G));
  EXPECT_EQ(combine_region_rows(counts.data(), G, /*pull=*/true), rows_received(counts.data(), G));
}

// Each rank stages, for every other source, the block of x that source's rows occupy: the blocks
// are x's source-major blocks (in order, contiguous), its own block and empty ones left out.
TEST_P(PerDomainSize, PullStagesEveryOtherSourcesBlockOfX) {
  const int G = GetParam();
  std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d)
      counts[static_cast<std::size_t>(s * G + d)] = (s + 2 * d) % 3 == 0 ? 0 : 5 * s + d;
  for (int me = 0; me < G; ++me) {
    const std::vector<StagedRows> staged = pull_staged_rows(counts.data(), G, me);
    std::int64_t first = 0, total = 0;
    std::size_t i = 0;
    for (int s = 0; s < G; ++s) {
      const std::int64_t n = counts[static_cast<std::size_t>(s * G + me)];
      if (s != me && n > 0) {
        ASSERT_LT(i, staged.size());
        EXPECT_EQ(staged[i].source, s);
        EXPECT_EQ(staged[i].first, first);
        EXPECT_EQ(staged[i].count, n);
        total += n;
        ++i;
      }
      first += n;
    }
    EXPECT_EQ(i, staged.size()) << "me " << me;
    // Everything received but this rank's own rows is staged.
    EXPECT_EQ(total, rows_received(counts.data(), G)[static_cast<std::size_t>(me)] -
                         counts[static_cast<std::size_t>(me * G + me)]);
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, PerDomainSize, ::testing::Values(1, 2, 4, 8, 16, 72));

// A reducer waits on the share holding each row: share_of must name the share whose range holds
// it, for any row count and share count (1: rows staged before the kernel, one share per peer).
TEST(HtShares, EveryRowLiesInTheShareNamedForIt) {
  for (const int S : {1, 2, 3, 16, 384, 2560}) {
    for (const std::int64_t n : {1, 2, 5, 383, 384, 385, 4080, 8191}) {
      std::int64_t covered = 0;
      for (int b = 0; b < S; ++b) {
        EXPECT_LE(share_begin(n, b, S), share_begin(n, b + 1, S));
        covered += share_begin(n, b + 1, S) - share_begin(n, b, S);
      }
      EXPECT_EQ(covered, n) << "n " << n << " S " << S;
      for (std::int64_t j = 0; j < n; ++j) {
        const int b = share_of(n, j, S);
        ASSERT_GE(b, 0);
        ASSERT_LT(b, S);
        ASSERT_LE(share_begin(n, b, S), j) << "n " << n << " S " << S << " j " << j;
        ASSERT_LT(j, share_begin(n, b + 1, S)) << "n " << n << " S " << S << " j " << j;
      }
    }
  }
}

// Beyond n * S = 2^32 the shares are computed in 64 bits: the same contract at the edges of each
// share, for row counts up to 2^31 - 1.
TEST(HtShares, LargeRowCountsTakeTheWideDivision) {
  for (const int S : {3, 384, 2560}) {
    for (const std::int64_t n : {(std::int64_t{1} << 32) / S + 1, std::int64_t{1} << 30, (std::int64_t{1} << 31) - 1}) {
      std::int64_t covered = 0;
      for (int b = 0; b < S; ++b) {
        const std::int64_t lo = share_begin(n, b, S), hi = share_begin(n, b + 1, S);
        ASSERT_LT(lo, hi) << "n " << n << " S " << S << " b " << b;
        covered += hi - lo;
        for (const std::int64_t j : {lo, hi - 1}) ASSERT_EQ(share_of(n, j, S), b) << "n " << n << " S " << S << " j " << j;
      }
      EXPECT_EQ(covered, n) << "n " << n << " S " << S;
    }
  }
}

TEST(HtPlan, BudgetOutsideTwoToMaxBlocksIsAnError) {
  EXPECT_THROW(plan_ht_dispatch(1, 132, 100), Error);
  EXPECT_THROW(plan_ht_dispatch(kMaxBlocks + 1, kMaxBlocks + 8, 100), Error);
  EXPECT_THROW(plan_ht_dispatch(133, 132, 100), Error);  // more than the GPU has
  // Token counts beyond int32 are refused, not overflowed (found by fuzz_checks).
  EXPECT_THROW(plan_ht_dispatch(24, 132, std::numeric_limits<std::int64_t>::max()), Error);
  EXPECT_THROW(plan_ht_dispatch(24, 132, -1), Error);
  EXPECT_THROW(plan_ht_combine(1, 132), Error);
  EXPECT_THROW(plan_ht_combine(64, 32), Error);
  const HtCombinePlan c = plan_ht_combine(2, 132);
  EXPECT_EQ(c.num_senders, 2);
  EXPECT_EQ(c.num_shares, 2 * kHtWarpsPerBlock);
}

TEST(HtPlan, RowsThatDoNotFitNameTheRankAndTheSetting) {
  try {
    check_rows_fit({10, 200, 30}, 100, 14336, "dispatch");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("num_nvl_bytes"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("rank 1 needs 200 rows"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_rows_fit({100, 99}, 100, 14336, "dispatch"));
}

// Sections of a layout: [offset, offset + bytes).
struct Section {
  std::size_t begin, end;
};
void expect_disjoint_aligned(std::vector<Section> sections, std::size_t limit) {
  std::sort(sections.begin(), sections.end(),
            [](const Section& a, const Section& b) { return a.begin < b.begin; });
  for (std::size_t i = 0; i < sections.size(); ++i) {
    EXPECT_EQ(sections[i].begin % 16, 0u) << "section " << i << " at " << sections[i].begin;
    EXPECT_LE(sections[i].end, limit) << "section " << i;
    if (i > 0) {
      EXPECT_LE(sections[i - 1].end, sections[i].begin) << "sections " << i - 1 << " and " << i;
    }
  }
}

TEST(HtLayout, DispatchSectionsAreAlignedDisjointAndInBounds) {
  for (std::size_t bytes : {std::size_t{0}, std::size_t{1000}, std::size_t{1} << 20, std::size_t{1} << 30}) {
    for (int fp8 = 0; fp8 < 2; ++fp8) {
      for (int k : {0, 1, 8, 32}) {
        for (int idx_bytes : {4, 8}) {
          const std::int64_t row_bytes = fp8 ? 7168 : 7168 * 2;
          const int scales = fp8 ? 56 : 0;
          const HtDispatchLayout l = HtDispatchLayout::make(bytes, row_bytes, scales, k, idx_bytes);
          const auto cap = static_cast<std::size_t>(l.cap_rows);
          EXPECT_LE(l.total_bytes, std::max(bytes, std::size_t{0})) << bytes;
          if (cap == 0) continue;
          expect_disjoint_aligned(
              {{l.x_offset, l.x_offset + cap * static_cast<std::size_t>(row_bytes)},
               {l.scales_offset, l.scales_offset + cap * 4u * static_cast<std::size_t>(scales)},
               {l.topk_offset, l.topk_offset + cap * static_cast<std::size_t>(k * idx_bytes)},
               {l.weights_offset, l.weights_offset + cap * 4u * static_cast<std::size_t>(k)},
               {l.src_idx_offset, l.src_idx_offset + cap * 4u}},
              bytes);
          // One more row would not fit.
          EXPECT_GT((cap + 1) * l.bytes_per_row(), bytes - std::min(bytes, 5 * kSectionAlignment));
        }
      }
    }
  }
}

TEST(HtLayout, CombineSectionsAreAlignedDisjointAndInBounds) {
  for (std::size_t bytes : {std::size_t{1} << 16, std::size_t{1} << 28}) {
    for (int k : {0, 8}) {
      const HtCombineLayout l = HtCombineLayout::make(bytes, 7168 * 2, k);
      const auto cap = static_cast<std::size_t>(l.cap_rows);
      EXPECT_LE(l.total_bytes, bytes);
      expect_disjoint_aligned({{l.x_offset, l.x_offset + cap * 7168u * 2u},
                               {l.weights_offset, l.weights_offset + cap * 4u * static_cast<std::size_t>(k)}},
                              bytes);
    }
  }
}

TEST(RegionLayout, ControlSectionsAreDisjointAndDataIsPageAligned) {
  using L = RegionLayout;
  expect_disjoint_aligned({{L::kBarrierSlots, L::kBarrierSlots + L::kBarrierBytes},
                           {L::kCallRecords, L::kCallRecords + L::kCallRecordsBytes},
                           {L::kMailboxes, L::kMailboxes + L::kMailboxesBytes},
                           {L::kProgress, L::kProgress + L::kProgressBytes}},
                          L::kData);
  EXPECT_EQ(L::kData % kRegionAlignment, 0u);
  EXPECT_EQ(L::region_bytes(1) - L::kData, kRegionAlignment);
  // Mailboxes of (parity, source) pairs do not overlap and stay inside the mailbox section.
  char* base = nullptr;
  const std::size_t last = static_cast<std::size_t>(L::mailbox(base + 0, 1, kMaxDomainRanks - 1) - base);
  EXPECT_EQ(last + L::kMailboxBytes, L::kMailboxes + L::kMailboxesBytes);
  EXPECT_EQ(static_cast<std::size_t>(L::mailbox(base, 0, 1) - L::mailbox(base, 0, 0)), L::kMailboxBytes);
  // Likewise the call records.
  const std::size_t last_record =
      static_cast<std::size_t>(L::call_record(base + 0, 1, kMaxDomainRanks - 1) - base);
  EXPECT_EQ(last_record + L::kCallRecordBytes, L::kCallRecords + L::kCallRecordsBytes);
  EXPECT_EQ(static_cast<std::size_t>(L::call_record(base, 1, 0) - L::call_record(base, 0, 0)),
            L::kCallRecordBytes * kMaxDomainRanks);
  const auto* p_last = L::progress(base, kMaxDomainRanks - 1, kMaxChannels - 1);
  EXPECT_EQ(reinterpret_cast<const char*>(p_last + 1) - base,
            static_cast<std::ptrdiff_t>(L::kProgress + L::kProgressBytes));
}

// Which dispatches given topk_idx alone run layout and notify as one launch: one domain, at most 64
// ranks, kFusedLayoutMaxExperts experts, 32 top-k slots and kFusedMaxBlocks blocks of 1,024 slot
// threads; the others run the layout first.
TEST(FusedLayoutNotify, TakesOneDomainOfAtMost64RanksAnd8192ExpertsAnd2048Blocks) {
  EXPECT_TRUE(can_fuse_layout_notify(1, 1, 256, 8, 4096));
  EXPECT_TRUE(can_fuse_layout_notify(8, 8, 256, 8, 4096));
  EXPECT_TRUE(can_fuse_layout_notify(64, 64, 64 * 128, 32, 4096));
  EXPECT_EQ(kFusedLayoutMaxExperts, 8192);
  EXPECT_TRUE(can_fuse_layout_notify(2, 2, kFusedLayoutMaxExperts, 1, 4096));
  EXPECT_FALSE(can_fuse_layout_notify(2, 2, kFusedLayoutMaxExperts + 2, 8, 4096));  // 8,194 experts
  EXPECT_FALSE(can_fuse_layout_notify(72, 72, 72 * 8, 8, 4096));                    // 72 ranks
  EXPECT_FALSE(can_fuse_layout_notify(16, 8, 256, 8, 4096));                        // two domains
  EXPECT_FALSE(can_fuse_layout_notify(8, 8, 256, 33, 4096));                        // 33 slots
  EXPECT_FALSE(can_fuse_layout_notify(8, 8, 256, 0, 4096));
  // A block per 128 tokens of up to 8 slots, per 32 tokens of more; one with no tokens.
  EXPECT_EQ(fused_layout_blocks(0, 8), 1);
  EXPECT_EQ(fused_layout_blocks(4096, 8), 32);
  EXPECT_EQ(fused_layout_blocks(4097, 8), 33);
  EXPECT_EQ(fused_layout_blocks(33797, 32), 1057);
  EXPECT_EQ(kFusedMaxBlocks, 2048);
  EXPECT_TRUE(can_fuse_layout_notify(8, 8, 256, 8, 2048 * 128));
  EXPECT_FALSE(can_fuse_layout_notify(8, 8, 256, 8, 2048 * 128 + 1));  // 2,049 blocks
  EXPECT_TRUE(can_fuse_layout_notify(8, 8, 256, 9, 2048 * 32));
  EXPECT_FALSE(can_fuse_layout_notify(8, 8, 256, 9, 2048 * 32 + 1));
}

}  // namespace
}  // namespace epcomm
