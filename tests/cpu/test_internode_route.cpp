// The multi-domain route, run on the CPU with the host plan (internode/md_plan.hpp), the index math
// (md_route.hpp) and the rings (md_layout.hpp, through test_internode_ring.hpp): each source's count
// records, the forwarders' domain records, the streams across domains and the forwarders' placement
// reproduce ref::ht_dispatch's receive order (source rank, then token) exactly, each (token, rank)
// pair written once; the reverse path (forwarders' partial sums, owners adding the domains in
// order) reproduces ref::ht_combine. Many (G, D), skewed routing, -1 slots, a rank without tokens,
// tokens routed nowhere, operations back to back with other ring shapes and no reset.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "cpu/test_internode_ring.hpp"
#include "cpu/test_reference_common.hpp"
#include "epcomm/reference.hpp"
#include "internode/md_plan.hpp"
#include "internode/md_route.hpp"
#include "internode/md_tables.hpp"

namespace epcomm {
namespace {

using internode_testing::deliver;
using internode_testing::RegionMemory;
using internode_testing::StreamCounters;

constexpr std::int64_t kHidden = 8;  // elements per row; enough to tell rows apart

struct Scenario {
  int G, D, nle, k;
  std::int64_t max_tokens;
  ref::testing::RoutingOptions routing{};
  bool empty_rank = false;  // rank 1 holds no tokens
  unsigned seed = 1;
};

struct World {
  MdGeometry geo;
  ref::Geometry rgeo;
  std::vector<ref::HtRankInput> inputs;
  std::vector<ref::HtRankOutput> expected;
};

World make_world(const Scenario& sc) {
  const int R = sc.G * sc.D;
  World w{MdGeometry::make(R, sc.G, R * sc.nle), ref::Geometry{R, R * sc.nle, sc.G}, {}, {}};
  std::mt19937 rng(sc.seed);
  for (int r = 0; r < R; ++r) {
    ref::HtRankInput in;
    in.num_tokens = sc.empty_rank && r == 1
                        ? 0
                        : std::uniform_int_distribution<std::int64_t>(sc.max_tokens / 2, sc.max_tokens)(rng);
    in.num_topk = sc.k;
    in.topk_idx = ref::testing::random_topk(rng, w.rgeo, in.num_tokens, sc.k, sc.routing);
    in.topk_weights.resize(static_cast<std::size_t>(in.num_tokens * sc.k));
    for (float& weight : in.topk_weights)
      weight = static_cast<float>(std::uniform_int_distribution<int>(1, 4)(rng));
    in.row_bytes = 2 * kHidden;
    in.x.assign(static_cast<std::size_t>(in.num_tokens * in.row_bytes), 0);
    w.inputs.push_back(std::move(in));
  }
  w.expected = ref::ht_dispatch(w.rgeo, w.inputs, {});
  return w;
}

MdSourceTokens tokens_of(const ref::HtRankInput& in) {
  return {in.num_tokens, in.num_topk, in.topk_idx.data()};
}

// What one dispatch slot carries that the route needs: the token and its rank mask.
struct Row {
  std::int32_t token = -1;
  std::vector<std::uint32_t> mask;
};

// The stream (src -> domain d, channel c) in the sender's order: its channel's tokens reaching d.
std::vector<Row> stream_of(const World& w, int src, int d, int c, int C) {
  const ref::HtRankInput& in = w.inputs[static_cast<std::size_t>(src)];
  const int G = w.geo.ranks_per_domain;
  std::vector<Row> rows;
  for (std::int64_t t = md_channel_begin(in.num_tokens, c, C); t < md_channel_begin(in.num_tokens, c + 1, C);
       ++t) {
    Row row{static_cast<std::int32_t>(t),
            std::vector<std::uint32_t>(static_cast<std::size_t>((G + 31) / 32), 0)};
    bool any = false;
    for (int s = 0; s < in.num_topk; ++s) {
      const std::int64_t e = in.topk_idx[static_cast<std::size_t>(t * in.num_topk + s)];
      if (e < 0 || w.geo.domain_of(w.geo.rank_of_expert(e)) != d) continue;
      const int j = w.geo.local_index(w.geo.rank_of_expert(e));
      row.mask[static_cast<std::size_t>(j / 32)] |= 1u << (j % 32);
      any = true;
    }
    if (any) rows.push_back(std::move(row));
  }
  return rows;
}

// One operation's ring shape and the state that outlives operations.
struct Transport {
  int C = 1, ring_slots = 4;
  std::vector<RegionMemory<Row>> dispatch_memory;                     // [R]
  std::vector<RegionMemory<std::vector<float>>> combine_memory;       // [R]
  std::map<std::tuple<int, int, int, int>, StreamCounters> counters;  // (op, sender, receiver, channel)
  std::mt19937 rng{7};

  MdRings rings(const World& w, std::size_t slot_stride) const {
    return MdRings::make(MdHeader::make(w.geo.num_domains(), w.geo.ranks_per_domain).total_bytes,
                         w.geo.num_domains() - 1, C, ring_slots, 2, slot_stride);
  }
};

// A forwarder's view of one row it placed: where it went on each rank of its domain.
struct Placed {
  std::int32_t token;
  std::vector<std::pair<int, std::int64_t>> rows;  // (j, row on rank (d, j)), ascending j
};

struct DispatchResult {
  std::vector<std::vector<std::pair<int, std::int32_t>>> received;  // [R][row]: (src rank, token)
  std::vector<std::int64_t> num_recv;                               // [R] from the counts alone
  std::vector<std::vector<std::int64_t>> per_expert;                // [R][nle]
  // [forwarder rank][source domain][channel]: what it placed, in stream order (combine retraces it)
  std::vector<std::vector<std::vector<std::vector<Placed>>>> placed;
};

DispatchResult run_dispatch(const World& w, Transport& tr) {
  const int G = w.geo.ranks_per_domain, D = w.geo.num_domains(), R = w.geo.num_ranks, C = tr.C;
  const MdCountRecord rec{C, G, w.geo.num_local_experts()};
  // 1. Each source's count record for each domain (its own too: it is that domain's forwarder).
  std::vector<std::vector<std::vector<std::int32_t>>> records(static_cast<std::size_t>(R));  // [src][d]
  for (int src = 0; src < R; ++src)
    for (int d = 0; d < D; ++d)
      records[src].push_back(md_count_record(w.geo, tokens_of(w.inputs[src]), src, d, C));
  // 2. Forwarder (d, i) -> rank (d, j): domain records; 3. what each rank learns from them.
  DispatchResult out;
  out.received.resize(static_cast<std::size_t>(R));
  std::vector<MdDomainCounts> learned(static_cast<std::size_t>(R));
  for (int d = 0; d < D; ++d) {
    for (int j = 0; j < G; ++j) {
      std::vector<std::vector<std::int32_t>> from_forwarders;
      for (int i = 0; i < G; ++i) {
        std::vector<std::vector<std::int32_t>> to_forwarder;
        for (int s = 0; s < D; ++s) to_forwarder.push_back(records[s * G + i][d]);
        from_forwarders.push_back(md_domain_record(w.geo, to_forwarder, C, j));
      }
      const int r = d * G + j;
      learned[r] = md_domain_counts(w.geo, from_forwarders, j);
      out.num_recv.push_back(learned[r].num_recv_rows);
      out.per_expert.push_back(learned[r].per_expert);
      out.received[r].assign(static_cast<std::size_t>(learned[r].num_recv_rows), {-1, -1});
    }
  }
  // 4. Streams cross to each forwarder (d, i); it places every row on the ranks of its mask.
  const MdRings rings = tr.rings(w, 128);
  out.placed.resize(static_cast<std::size_t>(R));
  for (int fwd = 0; fwd < R; ++fwd) {
    const int d = w.geo.domain_of(fwd), i = w.geo.local_index(fwd);
    const std::vector<std::int32_t>& counts = learned[fwd].counts;  // the same [R][G] on every rank of d
    out.placed[fwd].resize(static_cast<std::size_t>(D));
    for (int s = 0; s < D; ++s) {
      const int src = s * G + i;
      for (int c = 0; c < C; ++c) {
        const std::vector<Row> sent = stream_of(w, src, d, c, C);
        EXPECT_EQ(static_cast<std::int64_t>(sent.size()), records[src][d][rec.tokens(c)]) << "stream length";
        const std::vector<Row> got =
            s == d ? sent
                   : deliver(sent, rings, kMdOpDispatch, md_peer_index(d, s), c, tr.dispatch_memory[fwd],
                             tr.counters[{kMdOpDispatch, src, fwd, c}], tr.rng);
        std::vector<std::int64_t> next(static_cast<std::size_t>(G));  // row of the next token per j
        for (int j = 0; j < G; ++j) {
          next[j] = md_first_row(counts.data(), G, src, j);
          for (int c2 = 0; c2 < c; ++c2) next[j] += records[src][d][rec.to_rank(c2, j)];
        }
        std::vector<Placed> placed;
        for (const Row& row : got) {
          Placed p{row.token, {}};
          for (int j = 0; j < G; ++j) {
            if (!md_mask_has(row.mask.data(), j)) continue;
            auto& slot = out.received[d * G + j].at(static_cast<std::size_t>(next[j]));
            EXPECT_EQ(slot.first, -1) << "row " << next[j] << " of rank " << d * G + j << " written twice";
            slot = {src, row.token};
            p.rows.emplace_back(j, next[j]++);
          }
          placed.push_back(std::move(p));
        }
        out.placed[fwd][s].push_back(std::move(placed));
      }
    }
  }
  return out;
}

void expect_dispatch_matches(const World& w, const DispatchResult& got, const Scenario& sc) {
  for (int r = 0; r < w.geo.num_ranks; ++r) {
    SCOPED_TRACE(testing::Message() << "receiver " << r);
    const ref::HtRankOutput& want = w.expected[static_cast<std::size_t>(r)];
    ASSERT_EQ(got.num_recv[r], want.num_recv_tokens);
    ASSERT_EQ(got.received[r].size(), static_cast<std::size_t>(want.num_recv_tokens));
    for (std::size_t row = 0; row < got.received[r].size(); ++row) {
      ASSERT_EQ(got.received[r][row].first, want.route.src_rank[row]) << "row " << row;
      ASSERT_EQ(got.received[r][row].second, want.route.src_token[row]) << "row " << row;
    }
    for (int e = 0; e < w.geo.num_local_experts(); ++e)
      EXPECT_EQ(got.per_expert[r][e], want.num_recv_tokens_per_expert[e]) << "expert " << e;
  }
  (void)sc;
}

// Per-domain token counts of the records agree with the reference layout's num_tokens_per_domain.
void expect_domain_counts(const World& w, int C) {
  const MdCountRecord rec{C, w.geo.ranks_per_domain, w.geo.num_local_experts()};
  for (int src = 0; src < w.geo.num_ranks; ++src) {
    const ref::HtRankInput& in = w.inputs[src];
    const ref::Layout layout = ref::get_dispatch_layout(w.rgeo, in.topk_idx, in.num_tokens, in.num_topk);
    for (int d = 0; d < w.geo.num_domains(); ++d) {
      const std::vector<std::int32_t> r = md_count_record(w.geo, tokens_of(in), src, d, C);
      std::int64_t tokens = 0;
      for (int c = 0; c < C; ++c) tokens += r[rec.tokens(c)];
      ASSERT_EQ(tokens, layout.num_tokens_per_domain[d]) << "source " << src << " domain " << d;
      for (int j = 0; j < w.geo.ranks_per_domain; ++j) {
        std::int64_t to_rank = 0;
        for (int c = 0; c < C; ++c) to_rank += r[rec.to_rank(c, j)];
        ASSERT_EQ(to_rank, layout.num_tokens_per_rank[d * w.geo.ranks_per_domain + j]);
      }
    }
  }
}

// ---- combine: the reverse path ------------------------------------------------------------------

// Receivers' combine inputs (rows in dispatch order) and the owners' biases: small integers, so
// every float32 sum is exact and the hierarchical order must give the reference's bits exactly.
std::vector<ref::HtCombineRankInput> combine_inputs(const World& w, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> value(-8, 8);
  auto bf16_ints = [&](std::size_t n) {
    std::vector<std::uint16_t> v(n);
    for (std::uint16_t& x : v) x = ref::float_to_bf16(static_cast<float>(value(rng)));
    return v;
  };
  std::vector<ref::HtCombineRankInput> in(static_cast<std::size_t>(w.geo.num_ranks));
  for (int r = 0; r < w.geo.num_ranks; ++r) {
    const auto rows = static_cast<std::size_t>(w.expected[r].num_recv_tokens);
    const auto k = static_cast<std::size_t>(w.inputs[r].num_topk);
    in[r].x = bf16_ints(rows * kHidden);
    in[r].topk_weights.resize(rows * k);
    for (float& x : in[r].topk_weights) x = static_cast<float>(value(rng));
    in[r].bias0 = bf16_ints(static_cast<std::size_t>(w.inputs[r].num_tokens * kHidden));
    in[r].bias1 = bf16_ints(static_cast<std::size_t>(w.inputs[r].num_tokens * kHidden));
  }
  return in;
}

// A partial row: hidden float32 values, then k float32 weights.
using Partial = std::vector<float>;

std::vector<ref::HtCombineRankOutput> run_combine(const World& w, const DispatchResult& disp,
                                                  const std::vector<ref::HtCombineRankInput>& in,
                                                  Transport& tr) {
  const int G = w.geo.ranks_per_domain, D = w.geo.num_domains(), R = w.geo.num_ranks, C = tr.C;
  const int k = w.inputs[0].num_topk;
  const MdRings rings = tr.rings(w, 256);
  // arrived[owner][d][c]: partials from domain d's forwarder, in the owner's channel order.
  std::vector<std::vector<std::vector<std::vector<Partial>>>> arrived(
      static_cast<std::size_t>(R),
      std::vector<std::vector<std::vector<Partial>>>(
          static_cast<std::size_t>(D), std::vector<std::vector<Partial>>(static_cast<std::size_t>(C))));
  for (int fwd = 0; fwd < R; ++fwd) {
    const int d = w.geo.domain_of(fwd), i = w.geo.local_index(fwd);
    for (int s = 0; s < D; ++s) {
      const int owner = s * G + i;
      for (int c = 0; c < C; ++c) {
        std::vector<Partial> partials;
        for (const Placed& p : disp.placed[fwd][s][c]) {
          Partial sum(static_cast<std::size_t>(kHidden + k), 0.0f);
          for (const auto& [j, row] : p.rows) {  // ascending j: the domain's ranks in order
            const ref::HtCombineRankInput& x = in[static_cast<std::size_t>(d * G + j)];
            for (std::int64_t h = 0; h < kHidden; ++h)
              sum[h] += ref::bf16_to_float(x.x[static_cast<std::size_t>(row * kHidden + h)]);
            for (int q = 0; q < k; ++q)
              sum[kHidden + q] += x.topk_weights[static_cast<std::size_t>(row * k + q)];
          }
          if (p.rows.size() == 1) {  // one contributor: the BF16 put of md_slot.hpp is exact
            for (std::int64_t h = 0; h < kHidden; ++h)
              EXPECT_EQ(ref::bf16_to_float(ref::float_to_bf16(sum[h])), sum[h]);
          }
          partials.push_back(std::move(sum));
        }
        arrived[owner][d][c] =
            s == d ? partials
                   : deliver(partials, rings, kMdOpCombine, md_peer_index(s, d), c, tr.combine_memory[owner],
                             tr.counters[{kMdOpCombine, fwd, owner, c}], tr.rng);
      }
    }
  }
  // The owner adds its biases, then the domains' partials in domain order; one rounding to BF16.
  std::vector<ref::HtCombineRankOutput> out(static_cast<std::size_t>(R));
  for (int owner = 0; owner < R; ++owner) {
    const ref::HtRankInput& src = w.inputs[owner];
    out[owner].out.resize(static_cast<std::size_t>(src.num_tokens * kHidden));
    out[owner].topk_weights.resize(static_cast<std::size_t>(src.num_tokens * k));
    for (int c = 0; c < C; ++c) {
      std::vector<std::size_t> next(static_cast<std::size_t>(D), 0);
      for (std::int64_t t = md_channel_begin(src.num_tokens, c, C);
           t < md_channel_begin(src.num_tokens, c + 1, C); ++t) {
        std::vector<float> acc(static_cast<std::size_t>(kHidden + k), 0.0f);
        for (std::int64_t h = 0; h < kHidden; ++h) {
          const auto at = static_cast<std::size_t>(t * kHidden + h);
          acc[h] = ref::bf16_to_float(in[owner].bias0[at]) + ref::bf16_to_float(in[owner].bias1[at]);
        }
        for (int d = 0; d < D; ++d) {
          bool reaches = false;
          for (int q = 0; q < k; ++q) {
            const std::int64_t e = src.topk_idx[static_cast<std::size_t>(t * k + q)];
            reaches = reaches || (e >= 0 && w.geo.domain_of(w.geo.rank_of_expert(e)) == d);
          }
          if (!reaches) continue;
          const Partial& p = arrived[owner][d][c].at(next[d]++);
          for (std::size_t e = 0; e < acc.size(); ++e) acc[e] += p[e];
        }
        for (std::int64_t h = 0; h < kHidden; ++h)
          out[owner].out[static_cast<std::size_t>(t * kHidden + h)] = ref::float_to_bf16(acc[h]);
        for (int q = 0; q < k; ++q)
          out[owner].topk_weights[static_cast<std::size_t>(t * k + q)] = acc[kHidden + q];
      }
      for (int d = 0; d < D; ++d) EXPECT_EQ(next[d], arrived[owner][d][c].size()) << "partials left over";
    }
  }
  return out;
}

const std::vector<Scenario> kScenarios = {
    {2, 2, 2, 4, 40},
    {4, 2, 2, 6, 48, {.masked_fraction = 0.1, .one_token_nowhere = true}},
    {2, 4, 3, 4, 40, {.pinned_fraction = 0.3}, /*empty_rank=*/true},
    {1, 4, 4, 3, 32, {.duplicate_fraction = 0.2}},
    {4, 3, 2, 8, 36, {.pinned_fraction = 0.2, .masked_fraction = 0.1}},
    {8, 2, 1, 8, 24},
    {8, 4, 2, 8, 20, {.masked_fraction = 0.05}, true},
    {3, 5, 2, 5, 24, {.one_token_nowhere = true}},
};

TEST(InternodeRoute, DispatchReproducesTheReferenceOrder) {
  for (const Scenario& sc : kScenarios) {
    SCOPED_TRACE(testing::Message() << sc.G << "x" << sc.D << " seed " << sc.seed);
    const World w = make_world(sc);
    Transport tr;
    tr.dispatch_memory.resize(static_cast<std::size_t>(w.geo.num_ranks));
    // Back to back, the channels and ring depth change; nothing is reset between operations.
    for (const auto [C, N] : std::vector<std::pair<int, int>>{{3, 4}, {1, 5}, {4, 7}, {2, 4}}) {
      tr.C = C;
      tr.ring_slots = N;
      expect_dispatch_matches(w, run_dispatch(w, tr), sc);
    }
  }
}

TEST(InternodeRoute, CombineRetracesTheRouteAndMatchesTheReference) {
  for (const Scenario& sc : kScenarios) {
    SCOPED_TRACE(testing::Message() << sc.G << "x" << sc.D << " seed " << sc.seed);
    const World w = make_world(sc);
    Transport tr;
    tr.dispatch_memory.resize(static_cast<std::size_t>(w.geo.num_ranks));
    tr.combine_memory.resize(static_cast<std::size_t>(w.geo.num_ranks));
    std::vector<std::int64_t> num_tokens;
    std::vector<ref::HtRoute> routes;
    for (int r = 0; r < w.geo.num_ranks; ++r) {
      num_tokens.push_back(w.inputs[r].num_tokens);
      routes.push_back(w.expected[r].route);
    }
    for (const auto [C, N] : std::vector<std::pair<int, int>>{{2, 4}, {3, 6}}) {
      tr.C = C;
      tr.ring_slots = N;
      const DispatchResult disp = run_dispatch(w, tr);
      const auto in = combine_inputs(w, sc.seed + static_cast<unsigned>(C));
      const auto want = ref::ht_combine(kHidden, sc.k, num_tokens, routes, in);
      const auto got = run_combine(w, disp, in, tr);
      for (int r = 0; r < w.geo.num_ranks; ++r) {
        ASSERT_EQ(got[r].out, want[r].out) << "owner " << r;
        ASSERT_EQ(got[r].topk_weights, want[r].topk_weights) << "owner " << r;
      }
    }
  }
}

TEST(InternodeRoute, PerDomainCountsMatchTheReferenceLayout) {
  // Wide (G, D), few tokens: the counts only.
  for (const auto [G, D] : std::vector<std::pair<int, int>>{{8, 16}, {8, 256}, {4, 3}, {1, 64}, {72, 2}}) {
    SCOPED_TRACE(testing::Message() << G << "x" << D);
    Scenario sc{G, D, 1, 8, 6};
    sc.routing.masked_fraction = 0.1;
    std::mt19937 rng(3);
    World w{MdGeometry::make(G * D, G, G * D), ref::Geometry{G * D, G * D, G}, {}, {}};
    for (int r = 0; r < G * D; ++r) {
      ref::HtRankInput in;
      in.num_tokens = r % 7 == 3 ? 0 : 6;
      in.num_topk = 8;
      in.topk_idx = ref::testing::random_topk(rng, w.rgeo, in.num_tokens, 8, sc.routing);
      w.inputs.push_back(std::move(in));
    }
    expect_domain_counts(w, 3);
  }
}

// ---- the kernels' arithmetic (md_tables.hpp), as md_notify.cu and md_dispatch.cu use it ----------

// One rank's inputs as the kernels see them: is_token_in_rank and num_tokens_per_expert (the
// reference layout), then its scan.
struct KernelInputs {
  std::unique_ptr<bool[]> in_rank;  // [T, R]
  std::vector<std::int32_t> per_expert, scan_rows, scan_domains;
};

KernelInputs kernel_inputs(const World& w, int r, int C) {
  const ref::HtRankInput& in = w.inputs[static_cast<std::size_t>(r)];
  const int R = w.geo.num_ranks, G = w.geo.ranks_per_domain, D = w.geo.num_domains();
  const ref::Layout layout = ref::get_dispatch_layout(w.rgeo, in.topk_idx, in.num_tokens, in.num_topk);
  KernelInputs k;
  k.in_rank = std::make_unique<bool[]>(layout.is_token_in_rank.size() + 1);
  for (std::size_t q = 0; q < layout.is_token_in_rank.size(); ++q)
    k.in_rank[q] = layout.is_token_in_rank[q] != 0;
  k.per_expert = layout.num_tokens_per_expert;
  for (int c = 0; c < C; ++c) {
    for (int rr = 0; rr < R; ++rr)
      k.scan_rows.push_back(md_scan_rank(k.in_rank.get(), in.num_tokens, R, C, c, rr));
    for (int d = 0; d < D; ++d)
      k.scan_domains.push_back(md_scan_domain(k.in_rank.get(), in.num_tokens, R, G, C, c, d));
  }
  return k;
}

// Every table the kernels build equals the host specification (md_plan.hpp), the rows the
// kernels' senders (own domain) and forwarders (other domains) place with them land exactly where
// ref::ht_dispatch puts them, and combine's forwarders, merging the placed rows, retrace every
// stream (its tokens in order, each with its rank mask).
TEST(InternodeRoute, KernelTablesPlaceEveryRowLikeTheReference) {
  for (const Scenario& sc : kScenarios) {
    const World w = make_world(sc);
    const int G = w.geo.ranks_per_domain, D = w.geo.num_domains(), R = w.geo.num_ranks;
    const int nle = w.geo.num_local_experts();
    for (int C : {1, 3, 5}) {
      SCOPED_TRACE(testing::Message() << G << "x" << D << " seed " << sc.seed << " C " << C);
      const MdCountRecord f{C, G, nle};
      std::vector<KernelInputs> ins;
      std::vector<std::vector<std::vector<std::int32_t>>> records(static_cast<std::size_t>(R));  // [src][d]
      for (int r = 0; r < R; ++r) {
        ins.push_back(kernel_inputs(w, r, C));
        for (int d = 0; d < D; ++d) {
          std::vector<std::int32_t> rec;
          for (int q = 0; q < f.ints(); ++q)
            rec.push_back(md_record_entry(f, q, R, D, d, ins[r].scan_rows.data(), ins[r].scan_domains.data(),
                                          ins[r].per_expert.data()));
          ASSERT_EQ(rec, md_count_record(w.geo, tokens_of(w.inputs[r]), r, d, C))
              << "record of " << r << " for " << d;
          records[r].push_back(std::move(rec));
        }
      }
      // Forwarder (d, i): its tables, and its domain records (what md_domain_record specifies).
      std::vector<std::vector<std::int32_t>> prefix(static_cast<std::size_t>(R)),
          len(static_cast<std::size_t>(R));
      std::vector<std::vector<std::vector<std::int32_t>>> domain_records(
          static_cast<std::size_t>(R));  // [j][i]
      for (int fwd = 0; fwd < R; ++fwd) {
        const int d = fwd / G, i = fwd % G;
        auto record_of = [&](int s) { return s == d ? nullptr : records[s * G + i][d].data(); };
        prefix[fwd].assign(static_cast<std::size_t>(D) * (C + 1) * G, -1);
        for (int s = 0; s < D; ++s) {
          for (int j = 0; j < G; ++j)
            md_fill_prefix(f, record_of(s), ins[fwd].scan_rows.data(), R, d, j,
                           prefix[fwd].data() + static_cast<std::size_t>(s) * (C + 1) * G);
          for (int c = 0; c < C; ++c) len[fwd].push_back(s == d ? 0 : records[s * G + i][d][f.tokens(c)]);
        }
        std::vector<std::vector<std::int32_t>> to_forwarder;
        for (int s = 0; s < D; ++s) to_forwarder.push_back(records[s * G + i][d]);
        const MdDomainRecord out{D, G, nle};
        for (int j = 0; j < G; ++j) {
          std::vector<std::int32_t> rec;
          for (int k = 0; k < out.ints(); ++k)
            rec.push_back(md_domain_record_entry(f, out, k, d, j, prefix[fwd].data(),
                                                 ins[fwd].per_expert.data(), record_of));
          ASSERT_EQ(rec, md_domain_record(w.geo, to_forwarder, C, j)) << "forwarder " << fwd << " to " << j;
          domain_records[d * G + j].push_back(std::move(rec));
        }
      }
      // Placement: senders for their own domain, forwarders for the others, stream by stream.
      std::vector<std::vector<std::pair<int, std::int32_t>>> received(static_cast<std::size_t>(R));
      std::vector<std::vector<std::int32_t>> counts(static_cast<std::size_t>(D));
      for (int r = 0; r < R; ++r) {
        const MdDomainCounts learned = md_domain_counts(w.geo, domain_records[r], r % G);
        received[r].assign(static_cast<std::size_t>(learned.num_recv_rows), {-1, -1});
        counts[r / G] = learned.counts;
      }
      for (int fwd = 0; fwd < R; ++fwd) {
        const int d = fwd / G, i = fwd % G;
        for (int s = 0; s < D; ++s)
          for (int c = 0; c < C; ++c) {
            const int src = s * G + i;
            const std::vector<Row> stream = stream_of(w, src, d, c, C);
            if (s != d)
              EXPECT_EQ(len[fwd][s * C + c], static_cast<std::int32_t>(stream.size())) << "stream length";
            std::vector<std::int64_t> next(static_cast<std::size_t>(G));
            for (int j = 0; j < G; ++j)
              next[j] = md_stream_first_row(counts[d].data(), prefix[fwd].data(), G, C, src, c, j);
            for (const Row& row : stream)
              for (int j = 0; j < G; ++j) {
                if (!md_mask_has(row.mask.data(), j)) continue;
                auto& slot = received[d * G + j].at(static_cast<std::size_t>(next[j]++));
                EXPECT_EQ(slot.first, -1) << "a row of rank " << d * G + j << " written twice";
                slot = {src, row.token};
              }
          }
      }
      // Combine's forwarders retrace each stream by merging, over j, the rows [first row of c,
      // first row of c + 1) on (d, j) by their source token: the stream's tokens and masks again.
      for (int fwd = 0; fwd < R; ++fwd) {
        const int d = fwd / G, i = fwd % G;
        for (int s = 0; s < D; ++s)
          for (int c = 0; c < C; ++c) {
            const int src = s * G + i;
            std::vector<std::int64_t> cur(static_cast<std::size_t>(G)), end(static_cast<std::size_t>(G));
            for (int j = 0; j < G; ++j) {
              cur[j] = md_stream_first_row(counts[d].data(), prefix[fwd].data(), G, C, src, c, j);
              end[j] = md_stream_first_row(counts[d].data(), prefix[fwd].data(), G, C, src, c + 1, j);
            }
            std::vector<Row> merged;
            while (true) {
              std::int32_t best = -1;
              for (int j = 0; j < G; ++j)
                if (cur[j] < end[j]) {
                  const auto& row = received[d * G + j][static_cast<std::size_t>(cur[j])];
                  EXPECT_EQ(row.first, src) << "a row of another source inside the stream's range";
                  if (best < 0 || row.second < best) best = row.second;
                }
              if (best < 0) break;
              Row row{best, std::vector<std::uint32_t>(static_cast<std::size_t>((G + 31) / 32), 0)};
              for (int j = 0; j < G; ++j)
                if (cur[j] < end[j] && received[d * G + j][static_cast<std::size_t>(cur[j])].second == best) {
                  row.mask[static_cast<std::size_t>(j / 32)] |= 1u << (j % 32);
                  ++cur[j];
                }
              merged.push_back(std::move(row));
            }
            const std::vector<Row> stream = stream_of(w, src, d, c, C);
            ASSERT_EQ(merged.size(), stream.size()) << "stream " << src << " -> " << d << " channel " << c;
            for (std::size_t k = 0; k < merged.size(); ++k) {
              EXPECT_EQ(merged[k].token, stream[k].token) << "slot " << k;
              EXPECT_EQ(merged[k].mask, stream[k].mask) << "slot " << k;
            }
          }
      }
      for (int r = 0; r < R; ++r) {
        const ref::HtRoute& want = w.expected[static_cast<std::size_t>(r)].route;
        ASSERT_EQ(received[r].size(), want.src_rank.size()) << "receiver " << r;
        for (std::size_t row = 0; row < received[r].size(); ++row) {
          ASSERT_EQ(received[r][row].first, want.src_rank[row]) << "receiver " << r << " row " << row;
          ASSERT_EQ(received[r][row].second, want.src_token[row]) << "receiver " << r << " row " << row;
        }
      }
    }
  }
}

}  // namespace
}  // namespace epcomm
