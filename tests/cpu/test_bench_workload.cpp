// epcomm-bench's workloads (tools/bench/workload.hpp): the docs/benchmark.md table, deterministic routing,
// the skew, the payload forms (FP8 scales column-major) and the traffic counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "bench/workload.hpp"
#include "epcomm/error.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {
namespace {

Workload small_workload(Routing routing, int64_t num_tokens = 64, int num_experts = 16, int num_topk = 4) {
  Workload w;
  w.name = "test-small";
  w.routing = routing;
  w.num_tokens = num_tokens;
  w.hidden = 256;
  w.num_topk = num_topk;
  w.num_experts = num_experts;
  return w;
}

TEST(BenchWorkload, TableMatchesBenchMd) {
  EXPECT_EQ(workload_names(), (std::vector<std::string>{"ht-dsv3", "ht-skew", "ll-dsv3", "ll-small"}));
  const Workload ht = workloads_named("ht-dsv3").at(0);
  EXPECT_EQ(ht.num_tokens, 4096);
  EXPECT_EQ(ht.hidden, 7168);
  EXPECT_EQ(ht.num_topk, 8);
  EXPECT_EQ(ht.num_experts, 256);
  EXPECT_EQ(ht.routing, Routing::kRandom);
  EXPECT_EQ(workloads_named("ht-skew").at(0).routing, Routing::kSkewed);
  const Workload ll = workloads_named("ll-dsv3").at(0);
  EXPECT_EQ(ll.mode, Mode::kLowLatency);
  EXPECT_EQ(ll.num_tokens, 128);
  EXPECT_EQ(ll.num_experts, 288);
  const auto small = workloads_named("ll-small");
  ASSERT_EQ(small.size(), 3u);
  EXPECT_EQ(small[0].num_tokens, 1);
  EXPECT_EQ(small[1].num_tokens, 8);
  EXPECT_EQ(small[2].num_tokens, 32);
}

TEST(BenchWorkload, UnknownNameListsTheKnownOnes) {
  try {
    workloads_named("ht-nope");
    FAIL() << "expected epcomm::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("ht-nope"), std::string::npos);
    EXPECT_NE(e.message().find("ll-small"), std::string::npos);
  }
}

TEST(BenchWorkload, ValidateRejectsExpertsNotDivisibleByRanks) {
  const Workload ll = workloads_named("ll-dsv3").at(0);  // 288 experts
  EXPECT_NO_THROW(validate(ll, 8));
  EXPECT_THROW(validate(ll, 5), Error);
  Workload bad = small_workload(Routing::kRandom);
  bad.hidden = 200;
  EXPECT_THROW(validate(bad, 2), Error);
}

// Issue 19 item 7: a custom shape gets docs/benchmark.md's name and the same checks as a named workload.
TEST(BenchWorkload, CustomShape) {
  const Workload w = make_custom_workload(
      {.num_tokens = 4096, .hidden = 7168, .num_topk = 8, .num_experts = 256, .routing = Routing::kRandom});
  EXPECT_EQ(w.name, "custom-t4096-h7168-k8-e256-uniform");
  EXPECT_EQ(w.num_scales(), 56);
  EXPECT_NO_THROW(validate(w, 8));
  try {
    validate(w, 3);  // experts divisible by ranks: known only at run time
    FAIL() << "expected epcomm::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("divisible by the number of ranks (3)"), std::string::npos) << e.message();
  }
  const Workload ll = make_custom_workload({.num_tokens = 32,
                                            .hidden = 2560,
                                            .num_topk = 6,
                                            .num_experts = 160,
                                            .routing = Routing::kSkewed,
                                            .mode = Mode::kLowLatency});
  EXPECT_EQ(ll.name, "custom-t32-h2560-k6-e160-skew-ll");
  EXPECT_EQ(make_routing(ll, 2, 1).topk_idx.size(), 32u * 6);
  EXPECT_THROW(make_custom_workload({.num_tokens = 8, .hidden = 2500, .num_topk = 2, .num_experts = 8}),
               Error);
}

TEST(BenchWorkload, RowBytes) {
  const Workload ht = workloads_named("ht-dsv3").at(0);
  EXPECT_EQ(row_bytes(ht, Dtype::kBf16), 7168 * 2);
  EXPECT_EQ(row_bytes(ht, Dtype::kFp8), 7168 + 4 * 7168 / 128);
}

TEST(BenchRouting, DeterministicPerRankAndDifferentAcrossRanks) {
  const Workload w = workloads_named("ht-dsv3").at(0);
  const RankRouting a = make_routing(w, 2, 1);
  const RankRouting b = make_routing(w, 2, 1);
  const RankRouting other = make_routing(w, 2, 0);
  EXPECT_EQ(a.topk_idx, b.topk_idx);
  EXPECT_EQ(a.topk_weights, b.topk_weights);
  EXPECT_NE(a.topk_idx, other.topk_idx);
}

TEST(BenchRouting, RandomTopkIsDistinctInRangeWithPositiveWeights) {
  const Workload w = workloads_named("ht-dsv3").at(0);
  const RankRouting r = make_routing(w, 2, 0);
  ASSERT_EQ(r.topk_idx.size(), static_cast<size_t>(w.num_tokens * w.num_topk));
  for (int64_t t = 0; t < w.num_tokens; ++t) {
    std::set<int64_t> seen;
    for (int k = 0; k < w.num_topk; ++k) {
      const int64_t e = r.topk_idx[t * w.num_topk + k];
      ASSERT_GE(e, 0) << "random routing has no -1 slots";
      ASSERT_LT(e, w.num_experts);
      ASSERT_TRUE(seen.insert(e).second) << "token " << t << " repeats expert " << e;
      const float weight = r.topk_weights[t * w.num_topk + k];
      ASSERT_GE(weight, kMinTopkWeight);
      ASSERT_LT(weight, kMaxTopkWeight);
    }
  }
}

TEST(BenchRouting, RandomRoutingSpreadsOverRanks) {
  // top-8 of 256 experts on 2 ranks: almost every token reaches both ranks (1 - 2 * C(128,8)/C(256,8)).
  const Workload w = workloads_named("ht-dsv3").at(0);
  const Traffic tr = compute_traffic(w, 2, 0);
  EXPECT_GT(tr.send_rows, static_cast<int64_t>(0.98 * 2 * w.num_tokens));
  EXPECT_LE(tr.send_rows, 2 * w.num_tokens);
}

TEST(BenchRouting, SkewFractions) {
  const Workload w = workloads_named("ht-skew").at(0);
  const int num_ranks = 2;
  const int num_local = w.num_experts / num_ranks;
  for (int rank = 0; rank < num_ranks; ++rank) {
    const RankRouting r = make_routing(w, num_ranks, rank);
    int64_t masked = 0;
    int64_t on_rank0_only = 0;
    for (int64_t t = 0; t < w.num_tokens; ++t) {
      bool all_rank0 = true;
      int valid = 0;
      std::set<int64_t> seen;
      for (int k = 0; k < w.num_topk; ++k) {
        const int64_t e = r.topk_idx[t * w.num_topk + k];
        if (e < 0) {
          ++masked;
          continue;
        }
        ++valid;
        ASSERT_TRUE(seen.insert(e).second) << "token " << t << " repeats expert " << e;
        all_rank0 = all_rank0 && e < num_local;
      }
      if (valid > 0 && all_rank0) ++on_rank0_only;
    }
    const double pinned_fraction = static_cast<double>(on_rank0_only) / static_cast<double>(w.num_tokens);
    const double masked_fraction =
        static_cast<double>(masked) / static_cast<double>(w.num_tokens * w.num_topk);
    // 4096 tokens: the standard deviation of the pinned fraction is 0.007; random tokens land on
    // rank 0 only with probability ~0.004.
    EXPECT_NEAR(pinned_fraction, kSkewPinnedFraction, 0.03) << "rank " << rank;
    EXPECT_NEAR(masked_fraction, kSkewMaskedFraction, 0.01) << "rank " << rank;
  }
}

TEST(BenchRouting, SkewWithFewerRank0ExpertsThanTopkStaysDistinct) {
  // 16 experts on 8 ranks: rank 0 has 2 experts, top-k is 4.
  const Workload w = small_workload(Routing::kSkewed, 256, 16, 4);
  const RankRouting r = make_routing(w, 8, 3);
  for (int64_t t = 0; t < w.num_tokens; ++t) {
    std::set<int64_t> seen;
    for (int k = 0; k < w.num_topk; ++k) {
      const int64_t e = r.topk_idx[t * w.num_topk + k];
      if (e >= 0) {
        ASSERT_TRUE(seen.insert(e).second);
      }
      ASSERT_LT(e, w.num_experts);
    }
  }
}

TEST(BenchInputs, Bf16AndFp8FormsAgree) {
  const Workload w = small_workload(Routing::kRandom, 48);
  const RankInputs in = make_rank_inputs(w, 2, 1);
  const int64_t T = w.num_tokens;
  const int64_t H = w.hidden;

  EXPECT_EQ(in.bf16.num_tokens, T);
  EXPECT_EQ(in.bf16.row_bytes, H * 2);
  ASSERT_EQ(in.bf16.x.size(), static_cast<size_t>(T * H * 2));
  EXPECT_EQ(in.bf16.num_scales, 0);
  EXPECT_EQ(in.bf16.topk_idx, make_routing(w, 2, 1).topk_idx);
  EXPECT_EQ(in.fp8.topk_idx, in.bf16.topk_idx);

  // Column-major scales: [hidden/128, T] physically.
  EXPECT_EQ(in.fp8.row_bytes, H);
  EXPECT_EQ(in.fp8.num_scales, H / 128);
  EXPECT_EQ(in.fp8.scale_stride_token, 1);
  EXPECT_EQ(in.fp8.scale_stride_block, T);
  ASSERT_EQ(in.fp8.scales.size(), static_cast<size_t>(T * (H / 128)));
  ASSERT_EQ(in.fp8.x.size(), static_cast<size_t>(T * H));

  std::vector<uint16_t> x(static_cast<size_t>(T * H));
  std::memcpy(x.data(), in.bf16.x.data(), in.bf16.x.size());
  int64_t zeros = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < H / 128; ++j) {
      float amax = 0;
      for (int64_t c = 0; c < 128; ++c)
        amax = std::max(amax, std::fabs(ref::bf16_to_float(x[t * H + j * 128 + c])));
      const float scale = in.fp8.scales[j * T + t];
      EXPECT_FLOAT_EQ(scale, amax / ref::kFp8Max) << "token " << t << " block " << j;
      for (int64_t c = 0; c < 128; ++c) {
        const int64_t i = t * H + j * 128 + c;
        const float v = ref::bf16_to_float(x[i]);
        zeros += v == 0.0f;
        const float back = ref::e4m3_to_float(in.fp8.x[i]) * scale;
        // E4M3 keeps 3 mantissa bits: relative error <= 1/16, plus the subnormal step near zero.
        EXPECT_NEAR(back, v, std::fabs(v) / 16 + scale * 0x1.0p-9f) << "element " << i;
      }
    }
  }
  EXPECT_EQ(zeros, 0);
}

TEST(BenchInputs, Deterministic) {
  const Workload w = small_workload(Routing::kSkewed, 16);
  const RankInputs a = make_rank_inputs(w, 4, 2);
  const RankInputs b = make_rank_inputs(w, 4, 2);
  const RankInputs c = make_rank_inputs(w, 4, 3);
  EXPECT_EQ(a.bf16.x, b.bf16.x);
  EXPECT_EQ(a.fp8.x, b.fp8.x);
  EXPECT_EQ(a.fp8.scales, b.fp8.scales);
  EXPECT_NE(a.bf16.x, c.bf16.x);
}

TEST(BenchTraffic, HandWorkedTwoRanks) {
  // 4 experts on 2 ranks (rank 0: experts 0,1; rank 1: experts 2,3), top-2, 2 tokens per rank.
  Workload w = small_workload(Routing::kRandom, 2, 4, 2);
  std::vector<RankRouting> routings(2);
  routings[0].topk_idx = {0, 1,   // token 0 -> rank 0 only
                          1, 2};  // token 1 -> ranks 0 and 1
  routings[1].topk_idx = {3, -1,  // token 0 -> rank 1 only
                          0, 3};  // token 1 -> ranks 0 and 1
  const Traffic r0 = compute_traffic(w, routings, 0);
  EXPECT_EQ(r0.recv_rows, 3);  // own t0, own t1, rank 1's t1
  EXPECT_EQ(r0.recv_rows_remote, 1);
  EXPECT_EQ(r0.send_rows, 3);  // t0 -> 0, t1 -> 0, t1 -> 1
  EXPECT_EQ(r0.send_rows_remote, 1);
  EXPECT_EQ(r0.recv_pairs, 4);  // (t0,e0) (t0,e1) (t1,e1) from itself, (t1,e0) from rank 1
  EXPECT_EQ(r0.recv_pairs_remote, 1);
  EXPECT_EQ(r0.send_pairs_remote, 1);  // (t1,e2)
  const Traffic r1 = compute_traffic(w, routings, 1);
  EXPECT_EQ(r1.recv_rows, 3);  // rank 0's t1, own t0, own t1
  EXPECT_EQ(r1.recv_rows_remote, 1);
  EXPECT_EQ(r1.send_rows, 3);
  EXPECT_EQ(r1.send_rows_remote, 1);
  EXPECT_EQ(r1.recv_pairs, 3);         // (t1,e2) from rank 0, (t0,e3) (t1,e3) own
  EXPECT_EQ(r1.send_pairs_remote, 1);  // (t1,e0)
}

TEST(BenchTraffic, RowsAreConserved) {
  const Workload w = workloads_named("ll-dsv3").at(0);
  const int num_ranks = 4;
  std::vector<RankRouting> routings;
  for (int r = 0; r < num_ranks; ++r) routings.push_back(make_routing(w, num_ranks, r));
  int64_t sent = 0, received = 0, sent_remote = 0, received_remote = 0;
  for (int r = 0; r < num_ranks; ++r) {
    const Traffic tr = compute_traffic(w, routings, r);
    sent += tr.send_rows;
    received += tr.recv_rows;
    sent_remote += tr.send_rows_remote;
    received_remote += tr.recv_rows_remote;
    EXPECT_LE(tr.recv_rows_remote, tr.recv_rows);
  }
  EXPECT_EQ(sent, received);
  EXPECT_EQ(sent_remote, received_remote);
}

}  // namespace
}  // namespace epcomm::bench
