// What a rank says when a peer makes a different Buffer: the kind or the LowLatencyOptions field
// that differs (with both values and the peer), before the region size those options led to.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "buffer/creation_record.hpp"

namespace epcomm {
namespace {

const LowLatencyOptions kLl{.max_tokens_per_rank = 128, .hidden = 7168, .num_experts = 256, .max_topk = 8};

CreationRecord ll_record(LowLatencyOptions ll, std::int64_t region_bytes = 1 << 20) {
  return make_creation_record(&ll, region_bytes);
}

TEST(CreationRecord, SameOptionsMatch) {
  EXPECT_EQ(creation_difference(ll_record(kLl), ll_record(kLl), 0, 1), "");
  const CreationRecord ht = make_creation_record(nullptr, 4096);
  EXPECT_EQ(creation_difference(ht, ht, 0, 1), "");
}

TEST(CreationRecord, EachLowLatencyOptionIsNamedWithBothValues) {
  LowLatencyOptions other = kLl;
  other.hidden = 4096;
  EXPECT_EQ(creation_difference(ll_record(kLl), ll_record(other, 1 << 19), 0, 1),
            "Buffer: LowLatencyOptions differ: hidden is 7168 here but 4096 at rank 1; every rank must pass "
            "the same max_tokens_per_rank, hidden, num_experts and max_topk");
  other = kLl;
  other.max_tokens_per_rank = 64;
  EXPECT_NE(creation_difference(ll_record(kLl), ll_record(other), 2, 3)
                .find("max_tokens_per_rank is 128 here but 64 at rank 3"),
            std::string::npos);
  other = kLl;
  other.num_experts = 288;
  EXPECT_NE(
      creation_difference(ll_record(kLl), ll_record(other), 0, 1).find("num_experts is 256 here but 288"),
      std::string::npos);
  other = kLl;
  other.max_topk = 4;
  EXPECT_NE(creation_difference(ll_record(kLl), ll_record(other), 0, 1).find("max_topk is 8 here but 4"),
            std::string::npos);
}

TEST(CreationRecord, KindDifferenceComesFirst) {
  const std::string m = creation_difference(ll_record(kLl), make_creation_record(nullptr, 1 << 28), 0, 1);
  EXPECT_EQ(
      m,
      "Buffer: the ranks' Buffers differ: rank 1 made a high-throughput Buffer, rank 0 a low-latency one; "
      "every rank must make the same kind of Buffer with the same options");
}

TEST(CreationRecord, RegionSizeIsNamedWhenTheOptionsAgree) {
  EXPECT_EQ(
      creation_difference(make_creation_record(nullptr, 1000), make_creation_record(nullptr, 2000), 0, 1),
      "num_nvl_bytes: every rank must pass the same value; rank 1 has a region of 2000 bytes, rank 0 of "
      "1000");
}

// Every rank is compared, those of other NVLink domains included (a Buffer across domains learns
// which option differs before NVSHMEM is touched); the region size within each domain, every
// domain by every rank (so that all refuse together).
TEST(CreationRecord, EveryRankIsComparedTheRegionWithinEachDomain) {
  LowLatencyOptions other = kLl;
  other.hidden = 4096;
  // 4 ranks, domains of 2; this rank is 1 (domain 0: ranks 0-1).
  std::vector<CreationRecord> every(4, ll_record(kLl));
  EXPECT_EQ(first_creation_difference(every, 1, 2), "");
  every[2] = ll_record(kLl, 1 << 19);  // another domain's size, the same in all of it: allowed
  every[3] = ll_record(kLl, 1 << 19);
  EXPECT_EQ(first_creation_difference(every, 1, 2), "");
  every[3] = ll_record(kLl, 1 << 18);  // another domain whose ranks disagree: named here too
  EXPECT_EQ(first_creation_difference(every, 1, 2),
            "num_nvl_bytes: every rank of an NVLink domain must pass the same value; rank 3 has a region of "
            "262144 bytes, rank 2 of its domain (1) of 524288");
  every[2] = ll_record(kLl);
  every[3] = ll_record(kLl);
  every[0] = ll_record(kLl, 1 << 19);  // a domain peer's region: named
  EXPECT_NE(first_creation_difference(every, 1, 2)
                .find("num_nvl_bytes: every rank must pass the same value; "
                      "rank 0 has a region of 524288 bytes"),
            std::string::npos);
  every[0] = ll_record(kLl);
  every[2] = ll_record(other);  // another domain's options: named
  EXPECT_NE(first_creation_difference(every, 1, 2).find("hidden is 7168 here but 4096 at rank 2"),
            std::string::npos);
  every[2] = make_creation_record(nullptr, 1 << 20);  // another domain's kind: named
  EXPECT_NE(first_creation_difference(every, 1, 2).find("rank 2 made a high-throughput Buffer"),
            std::string::npos);
  // Every rank of either domain refuses when one domain disagrees.
  std::vector<CreationRecord> split(4, ll_record(kLl));
  split[1] = ll_record(kLl, 1 << 19);
  for (int rank = 0; rank < 4; ++rank) EXPECT_NE(first_creation_difference(split, rank, 2), "") << rank;
  // One rank per domain: each domain's size is its own.
  EXPECT_EQ(first_creation_difference(split, 2, 1), "");
}

}  // namespace
}  // namespace epcomm
