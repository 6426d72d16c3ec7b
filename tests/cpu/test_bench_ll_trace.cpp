// epcomm-bench's summary of a low-latency phase trace (tools/bench/ll_trace_stats.hpp): launches
// found in a ring of per-block timestamps, ordered by time, with their spans, gaps and per-point
// first / median / last blocks; and the same from a Buffer's trace (epcomm/ll_trace.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "bench/ll_trace_stats.hpp"
#include "epcomm/error.hpp"
#include "epcomm/ll_trace.hpp"

namespace epcomm::bench {
namespace {

constexpr int kRing = 4, kBlocks = 3, kPoints = 4;
constexpr int kEntry = 0, kWork = 1, kRecvEntry = 2, kExit = 3;

struct Stamps {
  std::vector<std::uint64_t> values = std::vector<std::uint64_t>(kRing * kBlocks * kPoints, 0);
  void set(int slot, int block, int point, std::uint64_t ns) {
    values[static_cast<std::size_t>((slot * kBlocks + block) * kPoints + point)] = ns;
  }
};

// Two launches, the later one in the earlier ring slot; slots 1 and 2 hold none.
//   launch A (slot 3): entries 1000 / 1100 / 1200 ns, work 2000 / 2500 / 3000, exits 5000 / 4000
//                      (block 2 never exits); span 4 us.
//   launch B (slot 0): block 0 begins with a receive-only entry at 10000 and exits at 13000; block 1
//                      holds 900, older than B's beginning (left by an earlier launch): ignored.
Stamps two_launches() {
  Stamps s;
  const std::uint64_t entry[3] = {1000, 1100, 1200}, work[3] = {2000, 2500, 3000};
  for (int b = 0; b < 3; ++b) {
    s.set(3, b, kEntry, entry[b]);
    s.set(3, b, kWork, work[b]);
  }
  s.set(3, 0, kExit, 5000);
  s.set(3, 1, kExit, 4000);
  s.set(0, 0, kRecvEntry, 10000);
  s.set(0, 0, kExit, 13000);
  s.set(0, 1, kWork, 900);
  return s;
}

TEST(BenchLlTrace, FindsLaunchesInTimeOrderWithSpansAndGaps) {
  const LlTraceSummary s =
      summarize_ll_trace(two_launches().values, kRing, kBlocks, kPoints, {kEntry, kRecvEntry});
  EXPECT_EQ(s.launches, 2);
  EXPECT_DOUBLE_EQ(s.span_us, (4.0 + 3.0) / 2);  // A: 1000 -> 5000; B: 10000 -> 13000
  EXPECT_DOUBLE_EQ(s.gap_us, 5.0);               // A's last stamp 5000 -> B's beginning 10000
}

TEST(BenchLlTrace, PointsAreMediansOverLaunchesOfFirstMedianLastBlock) {
  const LlTraceSummary s =
      summarize_ll_trace(two_launches().values, kRing, kBlocks, kPoints, {kEntry, kRecvEntry});
  ASSERT_EQ(s.points.size(), static_cast<std::size_t>(kPoints));
  // Entry: only A, blocks at 0 / 0.1 / 0.2 us.
  EXPECT_TRUE(s.points[kEntry].seen);
  EXPECT_DOUBLE_EQ(s.points[kEntry].first_us, 0.0);
  EXPECT_DOUBLE_EQ(s.points[kEntry].median_us, 0.1);
  EXPECT_DOUBLE_EQ(s.points[kEntry].last_us, 0.2);
  // Work: only A (B's 900 predates B), 1.0 / 1.5 / 2.0 us.
  EXPECT_DOUBLE_EQ(s.points[kWork].first_us, 1.0);
  EXPECT_DOUBLE_EQ(s.points[kWork].median_us, 1.5);
  EXPECT_DOUBLE_EQ(s.points[kWork].last_us, 2.0);
  // Exit: A's blocks at 3.0 and 4.0 us (median 3.5), B's at 3.0; medians over the two launches.
  EXPECT_DOUBLE_EQ(s.points[kExit].first_us, 3.0);
  EXPECT_DOUBLE_EQ(s.points[kExit].median_us, (3.5 + 3.0) / 2);
  EXPECT_DOUBLE_EQ(s.points[kExit].last_us, (4.0 + 3.0) / 2);
  // Receive entry: only B, at its own beginning.
  EXPECT_TRUE(s.points[kRecvEntry].seen);
  EXPECT_DOUBLE_EQ(s.points[kRecvEntry].last_us, 0.0);
}

// Each block's own median (EPCOMM_LL_TRACE=2's lines): the block keeps its identity, so blocks of
// different roles can be told apart; a block that never reached a point is NaN there.
TEST(BenchLlTrace, ByBlockKeepsEachBlocksMedianOverLaunches) {
  const LlTraceSummary s =
      summarize_ll_trace(two_launches().values, kRing, kBlocks, kPoints, {kEntry, kRecvEntry});
  ASSERT_EQ(s.by_block.size(), static_cast<std::size_t>(kPoints));
  ASSERT_EQ(s.by_block[kWork].size(), static_cast<std::size_t>(kBlocks));
  // Work: only launch A (B's 900 predates B): 1.0 / 1.5 / 2.0 us after A began.
  EXPECT_DOUBLE_EQ(s.by_block[kWork][0], 1.0);
  EXPECT_DOUBLE_EQ(s.by_block[kWork][1], 1.5);
  EXPECT_DOUBLE_EQ(s.by_block[kWork][2], 2.0);
  // Exit: block 0 in both launches (4.0 and 3.0 us: median 3.5), block 1 in A (3.0), block 2 never.
  EXPECT_DOUBLE_EQ(s.by_block[kExit][0], 3.5);
  EXPECT_DOUBLE_EQ(s.by_block[kExit][1], 3.0);
  EXPECT_TRUE(std::isnan(s.by_block[kExit][2]));
  // Receive entry: only block 0 of B.
  EXPECT_DOUBLE_EQ(s.by_block[kRecvEntry][0], 0.0);
  EXPECT_TRUE(std::isnan(s.by_block[kRecvEntry][1]));
}

TEST(BenchLlTrace, EmptyRingHasNoLaunchAndWrongSizesAreRefused) {
  const LlTraceSummary s = summarize_ll_trace(Stamps{}.values, kRing, kBlocks, kPoints, {kEntry, kRecvEntry});
  EXPECT_EQ(s.launches, 0);
  EXPECT_DOUBLE_EQ(s.span_us, 0.0);
  for (const TracePointStats& p : s.points) EXPECT_FALSE(p.seen);
  EXPECT_TRUE(s.by_block.empty());
  EXPECT_THROW(summarize_ll_trace(std::vector<std::uint64_t>(5, 1), kRing, kBlocks, kPoints, {kEntry}),
               Error);
}

// A Buffer's trace (epcomm/ll_trace.hpp) is summarized the same way, its launches beginning at the
// points it names "entry" and "recv-entry" (when it has one), wherever they sit.
TEST(BenchLlTrace, ABuffersTraceBeginsLaunchesAtItsNamedEntryPoints) {
  LlTrace trace{.ring = kRing, .blocks = kBlocks, .points = {"entry", "work", "recv-entry", "exit"}};
  trace.stamps = two_launches().values;
  const LlTraceSummary s = summarize_ll_trace(trace);
  EXPECT_EQ(s.launches, 2);
  EXPECT_DOUBLE_EQ(s.span_us, (4.0 + 3.0) / 2);
  // Without a point named entry no launch could be found: refused.
  trace.points = {"entry-renamed", "work", "recv-entry", "exit"};
  EXPECT_THROW(summarize_ll_trace(trace), Error);
  EXPECT_EQ(summarize_ll_trace(LlTrace{}).launches, 0);  // a Buffer made without EPCOMM_LL_TRACE
}

// notify's trace (Buffer::notify_trace): one block, no recv-entry; each launch begins at its entry
// and each point is that block's stamp, medians over launches.
TEST(BenchLlTrace, ANotifyTraceOfOneBlockWithoutRecvEntry) {
  constexpr int kNotifyPoints = 3;
  LlTrace trace{.ring = kRing, .blocks = 1, .points = {"entry", "flags-seen", "exit"}};
  trace.stamps.assign(kRing * kNotifyPoints, 0);
  const std::uint64_t calls[3][kNotifyPoints] = {
      {1000, 3000, 9000}, {20000, 23000, 30000}, {40000, 41000, 48000}};
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < kNotifyPoints; ++p)
      trace.stamps[static_cast<std::size_t>(c * kNotifyPoints + p)] = calls[c][p];
  const LlTraceSummary s = summarize_ll_trace(trace);
  EXPECT_EQ(s.launches, 3);
  EXPECT_DOUBLE_EQ(s.span_us, 8.0);  // 8, 10, 8 us
  ASSERT_EQ(s.points.size(), static_cast<std::size_t>(kNotifyPoints));
  EXPECT_DOUBLE_EQ(s.points[1].median_us, 2.0);                 // 2, 3, 1 us
  EXPECT_DOUBLE_EQ(s.points[1].first_us, s.points[1].last_us);  // one block
  EXPECT_DOUBLE_EQ(s.points[2].median_us, 8.0);
}

}  // namespace
}  // namespace epcomm::bench
