// epcomm-bench on a multi-domain Buffer: the bytes it reports, counted from the run's routing
// (tools/bench/md_traffic.hpp), against a hand count and against the model (md_traffic), and the
// per-row bytes of the public epcomm/multi_domain.hpp.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "bench/md_traffic.hpp"
#include "bench/workload.hpp"
#include "epcomm/multi_domain.hpp"
#include "expect_error.hpp"
#include "internode/md_model.hpp"

namespace epcomm::bench {
namespace {

// 4 ranks as 2 domains of 2: rank r holds experts 2r and 2r+1; domain 0 = ranks 0, 1.
Workload tiny() {
  return make_custom_workload({.num_tokens = 3, .hidden = 128, .num_topk = 2, .num_experts = 8});
}

std::vector<RankRouting> hand_routing() {
  const auto rank = [](std::vector<std::int64_t> idx) {
    return RankRouting{std::move(idx), std::vector<float>(6, 0.5f)};
  };
  return {
      rank({0, 1, 4, 6, 2, 5}),     // rank 0: itself; ranks 2 and 3; ranks 1 and 2
      rank({6, -1, 0, 7, -1, -1}),  // rank 1: rank 3; ranks 0 and 3; nowhere
      rank({0, 2, 4, 5, 3, 7}),     // rank 2: ranks 0 and 1; itself; ranks 1 and 3
      rank({1, 6, 2, 3, 4, 6}),     // rank 3: ranks 0 and 3; rank 1; ranks 2 and 3
  };
}

// Counted by hand from the route: a token of (s, i) crosses once to each other domain d it
// reaches, to (d, i), which writes it to each other rank of d that needs it.
TEST(BenchMdTraffic, HandMadeRoutingIsCountedExactly) {
  const MdRows r0 = count_md_rows(tiny(), hand_routing(), 2, 0);
  EXPECT_EQ(r0.nic_send, 2);         // its tokens 1 (ranks 2, 3) and 2 (rank 2) reach domain 1
  EXPECT_EQ(r0.nic_send_single, 1);  // token 2: one rank there
  EXPECT_EQ(r0.nic_recv, 2);         // rank 2's tokens 0 (ranks 0, 1) and 2 (rank 1)
  EXPECT_EQ(r0.nic_recv_single, 1);
  EXPECT_EQ(r0.nvl, 3);  // to rank 1: rank 0's token 2, rank 2's tokens 0 and 2

  const MdRows r3 = count_md_rows(tiny(), hand_routing(), 2, 3);
  EXPECT_EQ(r3.nic_send, 2);  // tokens 0 (rank 0) and 1 (rank 1); token 2 stays in domain 1
  EXPECT_EQ(r3.nic_send_single, 2);
  EXPECT_EQ(r3.nic_recv, 2);  // rank 1's tokens 0 and 1 (rank 3 alone); token 2 goes nowhere
  EXPECT_EQ(r3.nic_recv_single, 2);
  EXPECT_EQ(r3.nvl, 1);  // to rank 2: its own token 2

  // One domain of 4: nothing crosses; a rank forwards its own tokens to every other rank they reach.
  const MdRows one = count_md_rows(tiny(), hand_routing(), 4, 0);
  EXPECT_EQ(one.nic_send + one.nic_recv, 0);
  EXPECT_EQ(one.nvl, 4);  // token 1 to ranks 2 and 3, token 2 to ranks 1 and 2
}

TEST(BenchMdTraffic, BytesFollowTheSlotOfEachDirection) {
  const MdRows r0 = count_md_rows(tiny(), hand_routing(), 2, 0);
  const MultiDomainRowBytes per_row{.dispatch_put = 100,
                                    .combine_put_f32 = 1000,
                                    .combine_put_bf16 = 10,
                                    .nvl_dispatch_row = 7,
                                    .nvl_combine_row = 3};
  const MdBytes d = md_bytes(r0, per_row, MdOpKind::kDispatch);
  EXPECT_EQ(d.nic_sent, 200);
  EXPECT_EQ(d.nic_recv, 200);
  EXPECT_EQ(d.nvl, 21);
  const MdBytes c = md_bytes(r0, per_row, MdOpKind::kCombine);
  EXPECT_EQ(c.nic_sent, 1010);  // back to rank 2: one float32 partial, one BF16 (one contributor)
  EXPECT_EQ(c.nic_recv, 1010);
  EXPECT_EQ(c.nvl, 9);

  const MdBytes c3 = md_bytes(count_md_rows(tiny(), hand_routing(), 2, 3), per_row, MdOpKind::kCombine);
  EXPECT_EQ(c3.nic_sent, 20);  // both partials had one contributor
  // The floor is the busier direction at the NIC rate: 20 bytes at 1 MB/s = 20 us.
  EXPECT_DOUBLE_EQ(md_nic_floor_us(MdBytes{.nic_sent = 20, .nic_recv = 5}, 0.001), 20.0);
  EXPECT_DOUBLE_EQ(md_nic_floor_us(MdBytes{.nic_sent = 5, .nic_recv = 40}, 0.001), 40.0);
  test::expect_arg_error([] { md_nic_floor_us(MdBytes{}, 0.0); }, "nic_gbps");
}

TEST(BenchMdTraffic, RefusesADomainSizeThatDoesNotDivideTheRanks) {
  test::expect_arg_error([] { count_md_rows(tiny(), hand_routing(), 3, 0); }, "ranks_per_domain");
  test::expect_arg_error([] { count_md_rows(tiny(), hand_routing(), 0, 0); }, "ranks_per_domain");
  test::expect_arg_error([] { count_md_rows(tiny(), hand_routing(), 2, 4); }, "rank_idx");
}

Workload uniform(std::int64_t tokens, int experts) {
  return make_custom_workload({.num_tokens = tokens,
                               .hidden = 1024,
                               .num_topk = 8,
                               .num_experts = experts,
                               .routing = Routing::kRandom});
}

std::vector<RankRouting> routings_of(const Workload& w, int num_ranks) {
  std::vector<RankRouting> all;
  for (int r = 0; r < num_ranks; ++r) all.push_back(make_routing(w, num_ranks, r));
  return all;
}

// What leaves one NIC arrives at another: over all ranks, sent rows equal received rows, and
// one-contributor partials likewise (also under skewed routing with empty slots).
TEST(BenchMdTraffic, EveryRowSentIsReceivedOnce) {
  for (const Routing routing : {Routing::kRandom, Routing::kSkewed}) {
    Workload w = uniform(256, 64);
    w.routing = routing;
    const std::vector<RankRouting> all = routings_of(w, 8);
    for (const int G : {1, 2, 4, 8}) {
      MdRows sum;
      for (int r = 0; r < 8; ++r) {
        const MdRows rows = count_md_rows(w, all, G, r);
        sum.nic_send += rows.nic_send;
        sum.nic_send_single += rows.nic_send_single;
        sum.nic_recv += rows.nic_recv;
        sum.nic_recv_single += rows.nic_recv_single;
        sum.nvl += rows.nvl;
      }
      EXPECT_EQ(sum.nic_send, sum.nic_recv) << "G " << G;
      EXPECT_EQ(sum.nic_send_single, sum.nic_recv_single) << "G " << G;
      if (G == 8) EXPECT_EQ(sum.nic_send, 0);
      if (G == 1) EXPECT_EQ(sum.nvl, 0);  // no other rank in a domain of one
      EXPECT_GT(sum.nic_send + sum.nvl, 0);
    }
  }
}

// Under uniform routing the counts of the run average to the model's expectation (md_model.hpp):
// the same route, counted two ways.
TEST(BenchMdTraffic, UniformRoutingAgreesWithTheModel) {
  const Workload w = uniform(2048, 64);
  const int R = 8;
  const std::vector<RankRouting> all = routings_of(w, R);
  for (const int G : {2, 4}) {
    for (const bool fp8 : {false, true}) {
      const MultiDomainShape shape{.num_tokens = w.num_tokens,
                                   .hidden = w.hidden,
                                   .num_topk = w.num_topk,
                                   .num_experts = w.num_experts,
                                   .num_ranks = R,
                                   .ranks_per_domain = G,
                                   .fp8 = fp8};
      const MultiDomainRowBytes per_row = multi_domain_row_bytes(shape);
      MdBytes dispatch, combine;
      for (int r = 0; r < R; ++r) {
        const MdRows rows = count_md_rows(w, all, G, r);
        const MdBytes d = md_bytes(rows, per_row, MdOpKind::kDispatch);
        const MdBytes c = md_bytes(rows, per_row, MdOpKind::kCombine);
        dispatch.nic_sent += d.nic_sent / R;
        dispatch.nic_recv += d.nic_recv / R;
        dispatch.nvl += d.nvl / R;
        combine.nic_sent += c.nic_sent / R;
        combine.nvl += c.nvl / R;
      }
      const MdTraffic model = md_traffic(MdShape{.num_tokens = w.num_tokens,
                                                 .hidden = w.hidden,
                                                 .num_topk = w.num_topk,
                                                 .num_experts = w.num_experts,
                                                 .ranks_per_domain = G,
                                                 .num_domains = R / G,
                                                 .fp8 = fp8});
      const auto near = [](double got, double want, const char* what, int g) {
        EXPECT_NEAR(got / want, 1.0, 0.02) << what << " G " << g << ": counted " << got << ", model " << want;
      };
      near(dispatch.nic_sent, model.nic_dispatch_bytes, "dispatch sent", G);
      near(dispatch.nic_recv, model.nic_dispatch_bytes, "dispatch received", G);
      near(dispatch.nvl, model.nvl_dispatch_bytes, "dispatch NVLink", G);
      near(combine.nic_sent, model.nic_combine_bytes[static_cast<int>(MdPartial::kAdaptive)], "combine sent",
           G);
      near(combine.nvl, model.nvl_combine_bytes, "combine NVLink", G);
    }
  }
}

// The public per-row bytes are the slot formats of docs/multi_domain.md (ht-dsv3: 14 416-byte BF16
// and 7 472-byte FP8 puts, 28 704 / 14 368-byte partials) and what the model prices.
TEST(BenchMdTraffic, PublicRowBytesAreTheSlotFormats) {
  MultiDomainShape shape{.num_tokens = 4096,
                         .hidden = 7168,
                         .num_topk = 8,
                         .num_experts = 256,
                         .num_ranks = 16,
                         .ranks_per_domain = 8};
  const MultiDomainRowBytes bf16 = multi_domain_row_bytes(shape);
  EXPECT_EQ(bf16.dispatch_put, 14416);
  EXPECT_EQ(bf16.combine_put_f32, 28704);
  EXPECT_EQ(bf16.combine_put_bf16, 14368);
  EXPECT_EQ(bf16.nvl_combine_row, 7168 * 2 + 4 * 8);
  shape.fp8 = true;
  const MultiDomainRowBytes fp8 = multi_domain_row_bytes(shape);
  EXPECT_EQ(fp8.dispatch_put, 7472);
  EXPECT_LT(fp8.nvl_dispatch_row, bf16.nvl_dispatch_row);
  const MdTraffic model = md_traffic(MdShape{.num_tokens = 4096,
                                             .hidden = 7168,
                                             .num_topk = 8,
                                             .num_experts = 256,
                                             .ranks_per_domain = 8,
                                             .num_domains = 2,
                                             .fp8 = true});
  EXPECT_DOUBLE_EQ(model.dispatch_put_bytes, static_cast<double>(fp8.dispatch_put));
  EXPECT_DOUBLE_EQ(model.nvl_dispatch_bytes, model.nvl_rows * static_cast<double>(fp8.nvl_dispatch_row));
  shape.ranks_per_domain = 3;  // 16 ranks are not domains of 3
  test::expect_arg_error([&] { multi_domain_row_bytes(shape); }, "ranks_per_domain");
}

}  // namespace
}  // namespace epcomm::bench
