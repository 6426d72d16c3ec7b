// Host math of the copy-engine dispatch (EPCOMM_HT_DISPATCH_CE) and combine (EPCOMM_HT_COMBINE_CE)
// for domains of 1 to 72 ranks: the plan's chunks and channels, and the copies, which must move
// each peer's rows exactly once from where they are to where the receiver expects them.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "intranode/ht_layout.hpp"
#include "transport/region_layout.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm {
namespace {

TEST(HtCopyPlan, ChunksAreRunsOfOneChannelPerPackWarp) {
  for (int sms : {2, 3, 8, 24, 64, 132, kMaxBlocks}) {
    for (int K : {1, 2, 4, kMaxCopyChunks}) {
      const HtDispatchPlan p = plan_ht_dispatch(sms, kMaxBlocks, 4096, 0, K);
      EXPECT_EQ(p.num_blocks, sms);
      EXPECT_EQ(p.num_senders, sms);  // the pack launch takes the whole budget
      EXPECT_GE(p.copy_chunks, 1);
      EXPECT_LE(p.copy_chunks, K);
      EXPECT_EQ(p.num_channels, p.copy_chunks * sms * kHtWarpsPerBlock);
      EXPECT_LE(p.num_channels, kMaxChannels);  // one progress counter per channel
      // As many chunks as asked for whenever the counters allow it.
      if (K * sms * kHtWarpsPerBlock <= kMaxChannels) EXPECT_EQ(p.copy_chunks, K) << "sms " << sms;
      EXPECT_GE(static_cast<std::int64_t>(p.num_channels) * p.tokens_per_channel, 4096);
      for (int k = 0; k < p.copy_chunks; ++k)
        EXPECT_EQ(copy_chunk_channel(k + 1, p.copy_chunks, p.num_channels) -
                      copy_chunk_channel(k, p.copy_chunks, p.num_channels),
                  sms * kHtWarpsPerBlock);
      EXPECT_EQ(copy_chunk_channel(p.copy_chunks, p.copy_chunks, p.num_channels), p.num_channels);
    }
  }
  EXPECT_EQ(plan_ht_dispatch(24, 132, 4096, 0, 4).copy_chunks, 4);
  EXPECT_EQ(plan_ht_dispatch(132, 132, 4096, 0, 4).copy_chunks, 1);
  EXPECT_EQ(plan_ht_dispatch(24, 132, 4096, 0, 0).copy_chunks, 0);  // SM stores
  EXPECT_THROW(plan_ht_dispatch(24, 132, 4096, 0, kMaxCopyChunks + 1), Error);
}

TEST(HtCopyPlan, KernelsBesideTheCopiesLeaveOneSmFree) {
  EXPECT_EQ(blocks_beside_copies(24, 132), 24);
  EXPECT_EQ(blocks_beside_copies(131, 132), 131);
  EXPECT_EQ(blocks_beside_copies(132, 132), 131);
  EXPECT_EQ(blocks_beside_copies(2, 2), 1);
}

TEST(HtCopyPlan, CachedDispatchKeepsTheHandlesChunks) {
  const HtDispatchPlan first = plan_ht_dispatch(24, 132, 4096, 0, 4);
  for (int sms : {24, 30, 132}) {
    const HtDispatchPlan again = plan_ht_dispatch(sms, 132, 4096, first.num_channels, 4);
    EXPECT_EQ(again.copy_chunks, 4);
    EXPECT_EQ(again.num_channels, first.num_channels);
    EXPECT_EQ(again.tokens_per_channel, first.tokens_per_channel);
    EXPECT_EQ(again.num_senders, 24);  // blocks of the pack launch, as the handle laid them out
    EXPECT_EQ(again.num_blocks, sms);  // the receivers take the whole budget
  }
  // Fewer SMs than a chunk's blocks: refused, naming the setting.
  try {
    plan_ht_dispatch(23, 132, 4096, first.num_channels, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.num_sms"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_ht_dispatch(24, 132, 4096, 24 * kHtWarpsPerBlock * 4 + 1, 4), Error);
}

TEST(HtCopyPlan, HostCountsMakeRoomForTheChunkBoundaries) {
  const HtHostCounts small{16, 2};
  EXPECT_EQ(small.ints(0), 1 + 16 + 4);
  EXPECT_EQ(small.ints(4), 1 + 16 + 4 + 2 * 5);
  EXPECT_EQ(small.send_prefix(), small.ints(0));
  // The largest case still fits below the multi-domain ready word, in 8-byte words.
  const HtHostCounts largest{max_local_experts(kMaxDomainRanks, kMaxChannels), kMaxDomainRanks};
  EXPECT_LE(static_cast<std::size_t>(largest.ints(kMaxCopyChunks)) * sizeof(std::uint64_t), kHostReadyOffset);
}

// A host count word holds its value and its call's tag; a zeroed word, another call's word or a
// word of the call 2^31 later but one are not this call's.
TEST(HtCopyPlan, HostCountWordsCarryTheirCall) {
  for (const std::uint64_t seq :
       {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{0x7fffffff}, std::uint64_t{1} << 40})
    for (const std::int32_t n : {0, 1, 4096, INT32_MAX}) {
      const std::uint64_t word = tag_host_count(n, seq);
      EXPECT_EQ(host_count_value(word), n);
      EXPECT_TRUE(host_count_is(word, seq));
      EXPECT_FALSE(host_count_is(word, seq + 1));
      EXPECT_FALSE(host_count_is(word, seq - 1));
    }
  EXPECT_FALSE(host_count_is(0, 1));
  EXPECT_FALSE(host_count_is(0, std::uint64_t{1} << 31));  // bit 31 set: a zeroed word matches no call
}

TEST(HtCopyPlan, PacksStartEarlyOnlyWhenWorstCaseStagingIsSmall) {
  EXPECT_EQ(early_staging_rows(4096, 2, 14336), 4096);     // ht-dsv3 on 2 ranks: 59 MB
  EXPECT_EQ(early_staging_rows(4096, 1, 14336), 0);        // no peers, nothing staged
  EXPECT_EQ(early_staging_rows(4096, 8, 14336), -1);       // 411 MB: wait for the exact size
  EXPECT_EQ(early_staging_rows(4096, 8, 7168), 7 * 4096);  // FP8 on 8 ranks: 206 MB
  EXPECT_EQ(early_staging_rows(0, 72, 14336), 0);
  const std::int64_t limit = HtTuning{}.dispatch_early_staging_bytes;
  EXPECT_EQ(limit, std::int64_t{256} << 20);
  const std::int64_t rows = limit / 16384;  // exactly the limit
  EXPECT_EQ(early_staging_rows(rows, 2, 16384), rows);
  EXPECT_EQ(early_staging_rows(rows + 1, 2, 16384), -1);
  EXPECT_EQ(early_staging_rows(1, 2, 16, /*max_bytes=*/0), -1);  // always after the counts
  EXPECT_EQ(early_staging_rows(0, 2, 16, /*max_bytes=*/0), 0);
}

// Combine's reducer warps cover every token exactly once whatever the slicing, in increasing order
// per warp (the issuer walks them so), and one slice is the contiguous split of before.
TEST(HtCopyPlan, ReducerWarpsCoverEveryTokenOnceInEachSlicing) {
  for (std::int64_t T : {0, 1, 7, 512, 4097}) {
    for (std::int64_t W : {1, 32, 384}) {
      for (int S : {1, 3, kMaxCopyChunks}) {
        std::vector<int> seen(static_cast<std::size_t>(T), 0);
        for (std::int64_t w = 0; w < W; ++w) {
          const WarpTokens r{T, w, W, S};
          std::int64_t last = -1;
          for (int q = 0; q < S; ++q) {
            for (std::int64_t t = r.begin(q); t < r.end(q); ++t) {
              ASSERT_GT(t, last);
              last = t;
              ++seen[static_cast<std::size_t>(t)];
            }
          }
          if (S == 1) {
            EXPECT_EQ(r.begin(0), T * w / W);
            EXPECT_EQ(r.end(0), T * (w + 1) / W);
          }
          EXPECT_GE(r.begin(0), 0);
          EXPECT_LE(r.end(S - 1), T);
        }
        for (std::int64_t t = 0; t < T; ++t)
          ASSERT_EQ(seen[static_cast<std::size_t>(t)], 1)
              << "T " << T << " W " << W << " S " << S << " t " << t;
      }
    }
  }
}

// Random counts and chunk boundaries: every peer's rows are copied exactly once, in order, from the
// staging rows the pack kernel wrote (first_staged_row + index among the rows to that peer) to the
// region rows the receiver reads (first_row_on + the same index).
class CopyPlanPerDomainSize : public ::testing::TestWithParam<int> {};

TEST_P(CopyPlanPerDomainSize, EveryPeersRowsAreCopiedOnceToWhereTheyLand) {
  const int G = GetParam();
  std::mt19937 rng(1234u + static_cast<unsigned>(G));
  for (int K : {1, 3, kMaxCopyChunks}) {
    std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
    for (auto& c : counts) c = static_cast<std::int32_t>(rng() % 4 == 0 ? 0 : rng() % 500);
    for (int me = 0; me < G; ++me) {
      // send_prefix[d][k]: non-decreasing from 0 to counts[me][d].
      std::vector<std::int32_t> prefix(static_cast<std::size_t>(G * (K + 1)));
      for (int d = 0; d < G; ++d) {
        const std::int32_t n = counts[static_cast<std::size_t>(me * G + d)];
        std::vector<std::int32_t> cuts;
        for (int k = 1; k < K; ++k) cuts.push_back(static_cast<std::int32_t>(rng() % (n + 1)));
        std::sort(cuts.begin(), cuts.end());
        prefix[static_cast<std::size_t>(d * (K + 1))] = 0;
        for (int k = 1; k < K; ++k) prefix[static_cast<std::size_t>(d * (K + 1) + k)] = cuts[k - 1];
        prefix[static_cast<std::size_t>(d * (K + 1) + K)] = n;
      }
      const std::vector<ChunkCopy> copies = dispatch_chunk_copies(counts.data(), prefix.data(), G, me, K);
      // next[d]: the index (among this rank's rows to d) the next copy to d must start at.
      std::vector<std::int64_t> next(static_cast<std::size_t>(G), 0);
      int last_chunk = 0;
      for (const ChunkCopy& c : copies) {
        ASSERT_NE(c.dst, me);
        ASSERT_GT(c.rows, 0);
        ASSERT_GE(c.chunk, last_chunk);  // chunk order: copy k waits only for pack k
        last_chunk = c.chunk;
        const auto d = static_cast<std::size_t>(c.dst);
        EXPECT_EQ(c.stage_row, first_staged_row(counts.data(), G, me, c.dst) + next[d]);
        EXPECT_EQ(c.region_row, first_row_on(counts.data(), G, me, c.dst) + next[d]);
        // Hence one copy per (chunk, peer) with rows and none for the others: the copy stream marks
        // a chunk complete for exactly the peers that wait for it (CopyEngineDispatch::finish).
        EXPECT_EQ(next[d], prefix[d * static_cast<std::size_t>(K + 1) + static_cast<std::size_t>(c.chunk)]);
        next[d] += c.rows;
      }
      std::int64_t staged = 0;
      for (int d = 0; d < G; ++d) {
        const std::int64_t n = counts[static_cast<std::size_t>(me * G + d)];
        EXPECT_EQ(next[static_cast<std::size_t>(d)], d == me ? 0 : n)
            << "G " << G << " me " << me << " d " << d;
        // Each peer's rows end in d's region before the next source's begin.
        if (d != me) {
          EXPECT_LE(first_row_on(counts.data(), G, me, d) + n, first_row_on(counts.data(), G, me + 1, d));
          staged += n;
        }
      }
      EXPECT_EQ(first_staged_row(counts.data(), G, me, G), staged);  // the staging's size in rows
    }
  }
}

// Straight copies: a rank missing at most kMaxStraightHoles tokens gets its rows straight from x, each
// run of consecutive tokens to it one copy cut at the chunk boundaries, every row exactly once at
// the region row the receiver reads (first_row_on + its index among the rows to that peer); the
// other peers (packed) get none, nor this rank unless asked for its own rows.
TEST_P(CopyPlanPerDomainSize, StraightCopiesMoveEachRunOfTokensOnceToWhereItLands) {
  const int G = GetParam();
  std::mt19937 rng(777u + static_cast<unsigned>(G));
  for (std::int64_t T : {0, 1, 97, 4096}) {
    for (int K : {1, 3, kMaxCopyChunks}) {
      const int C = K * 2 * kHtWarpsPerBlock;
      const int tpc = static_cast<int>(std::max<std::int64_t>(1, (T + C - 1) / C));
      // Per peer, which tokens miss it: none, about 3 (straight when at most kMaxStraightHoles), or a
      // third (packed).
      std::vector<bool> in(static_cast<std::size_t>(T * G));
      for (int d = 0; d < G; ++d) {
        for (std::int64_t t = 0; t < T; ++t) {
          const bool missing =
              d % 3 == 1 ? rng() % static_cast<unsigned>(T) < 3u : d % 3 == 2 && rng() % 3u == 0u;
          in[static_cast<std::size_t>(t * G + d)] = !missing;
        }
      }
      const std::unique_ptr<bool[]> flags(
          new bool[static_cast<std::size_t>(std::max<std::int64_t>(1, T * G))]);
      for (std::size_t i = 0; i < in.size(); ++i) flags[i] = in[i];
      for (int me = 0; me < G; ++me) {
        std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
        for (auto& c : counts) c = static_cast<std::int32_t>(rng() % 300);
        for (int d = 0; d < G; ++d) {
          std::int32_t n = 0;
          for (std::int64_t t = 0; t < T; ++t) n += in[static_cast<std::size_t>(t * G + d)] ? 1 : 0;
          counts[static_cast<std::size_t>(me * G + d)] = n;
        }
        // With `self`, this rank's own rows too (to the same rows of its outputs).
        const bool self = (me + K) % 2 == 1;
        const std::vector<StraightCopy> copies =
            dispatch_straight_copies(flags.get(), T, counts.data(), G, me, K, C, tpc, self);
        std::vector<std::int64_t> next_token(static_cast<std::size_t>(G), 0),
            index(static_cast<std::size_t>(G), 0);
        int last_chunk = 0, last_dst = -1;
        for (std::size_t i = 0; i < copies.size(); ++i) {
          const StraightCopy& c = copies[i];
          const auto d = static_cast<std::size_t>(c.dst);
          if (!self) ASSERT_NE(c.dst, me);
          ASSERT_TRUE(straight_copies(counts[static_cast<std::size_t>(me * G) + d], T));
          ASSERT_GT(c.rows, 0);
          ASSERT_TRUE(c.chunk > last_chunk || (c.chunk == last_chunk && c.dst >= last_dst));
          last_chunk = c.chunk;
          last_dst = c.dst;
          // Within one chunk's tokens.
          ASSERT_GE(c.token, std::int64_t{copy_chunk_channel(c.chunk, K, C)} * tpc);
          if (c.chunk + 1 < K)
            ASSERT_LE(c.token + c.rows, std::int64_t{copy_chunk_channel(c.chunk + 1, K, C)} * tpc);
          // Every token of the run goes to dst; those before it were covered by earlier copies.
          for (std::int64_t t = next_token[d]; t < c.token; ++t)
            ASSERT_FALSE(in[static_cast<std::size_t>(t * G) + d]);
          for (std::int64_t t = c.token; t < c.token + c.rows; ++t)
            ASSERT_TRUE(in[static_cast<std::size_t>(t * G) + d]);
          EXPECT_EQ(c.region_row, first_row_on(counts.data(), G, me, c.dst) + index[d]);
          // Maximal: a run continuing within the same chunk would have been one copy.
          if (i > 0 && copies[i - 1].dst == c.dst && copies[i - 1].chunk == c.chunk)
            EXPECT_LT(copies[i - 1].token + copies[i - 1].rows, c.token);
          next_token[d] = c.token + c.rows;
          index[d] += c.rows;
        }
        for (int d = 0; d < G; ++d) {
          const std::int32_t n = counts[static_cast<std::size_t>(me * G + d)];
          const bool straight = (d != me || self) && straight_copies(n, T);
          EXPECT_EQ(index[static_cast<std::size_t>(d)], straight ? n : 0)
              << "G " << G << " me " << me << " d " << d;
          if (d % 3 == 0 && (d != me || self) && T > 0) EXPECT_TRUE(straight);  // every token
          if (d % 3 == 2 && T >= 97) EXPECT_FALSE(straight);                    // a third missing
        }
      }
    }
  }
}

// Combine pushed by the copy engine: each owner gets back, exactly once and in order, the rows this
// rank received from it (a contiguous block of x), where its reducers look for them (after the
// rows it sent to ranks before this one), share b of them in chunk b.
TEST_P(CopyPlanPerDomainSize, CombineCopiesReturnEveryOwnersBlockInShares) {
  const int G = GetParam();
  std::mt19937 rng(4321u + static_cast<unsigned>(G));
  std::vector<std::int32_t> counts(static_cast<std::size_t>(G * G));
  for (auto& c : counts) c = static_cast<std::int32_t>(rng() % 5 == 0 ? 0 : rng() % 300);
  for (int K : {1, 3, kMaxCopyChunks}) {
    for (int me = 0; me < G; ++me) {
      const std::vector<CombineCopy> copies = combine_chunk_copies(counts.data(), G, me, K);
      std::vector<std::int64_t> next(static_cast<std::size_t>(G), 0);  // rows returned so far per owner
      int last_chunk = 0;
      for (const CombineCopy& c : copies) {
        ASSERT_NE(c.owner, me);
        ASSERT_GT(c.rows, 0);
        ASSERT_GE(c.chunk, last_chunk);
        last_chunk = c.chunk;
        const std::int64_t n = counts[static_cast<std::size_t>(c.owner * G + me)];
        const auto o = static_cast<std::size_t>(c.owner);
        EXPECT_EQ(next[o], share_begin(n, c.chunk, K));
        EXPECT_EQ(c.rows, share_begin(n, c.chunk + 1, K) - share_begin(n, c.chunk, K));
        EXPECT_EQ(c.x_row, first_row_on(counts.data(), G, c.owner, me) + next[o]);
        std::int64_t sent_before = 0;  // the owner's rows to ranks before me
        for (int r = 0; r < me; ++r) sent_before += counts[static_cast<std::size_t>(c.owner * G + r)];
        EXPECT_EQ(c.region_row, sent_before + next[o]);
        next[o] += c.rows;
      }
      for (int s = 0; s < G; ++s)
        EXPECT_EQ(next[static_cast<std::size_t>(s)],
                  s == me ? 0 : counts[static_cast<std::size_t>(s * G + me)])
            << "G " << G << " me " << me << " owner " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, CopyPlanPerDomainSize, ::testing::Values(1, 2, 4, 8, 16, 72));

}  // namespace
}  // namespace epcomm
