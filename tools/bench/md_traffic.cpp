#include "bench/md_traffic.hpp"

#include <algorithm>

#include "bench/require.hpp"

namespace epcomm::bench {

namespace {

// The ranks one token reaches, and per domain how many of its ranks; reset between tokens by
// walking only what was touched.
struct TokenReach {
  std::vector<char> rank;
  std::vector<int> per_domain;
  std::vector<int> touched;  // ranks set in `rank`

  TokenReach(int num_ranks, int num_domains) : rank(num_ranks, 0), per_domain(num_domains, 0) {}

  void clear(int ranks_per_domain) {
    for (const int r : touched) {
      rank[r] = 0;
      per_domain[r / ranks_per_domain] = 0;
    }
    touched.clear();
  }

  void add(int r, int ranks_per_domain) {
    if (rank[r]) return;
    rank[r] = 1;
    ++per_domain[r / ranks_per_domain];
    touched.push_back(r);
  }
};

}  // namespace

MdRows count_md_rows(const Workload& w, const std::vector<RankRouting>& routings, int ranks_per_domain,
                     int rank_idx) {
  const int num_ranks = static_cast<int>(routings.size());
  validate(w, num_ranks);
  const int G = ranks_per_domain;
  BENCH_CHECK_ARG(G >= 1 && num_ranks % G == 0, "ranks_per_domain: expected a divisor of the ", num_ranks,
                  " ranks, given ", G);
  BENCH_CHECK_ARG(rank_idx >= 0 && rank_idx < num_ranks, "rank_idx: expected 0..", num_ranks - 1, ", given ",
                  rank_idx);
  const int num_local_experts = w.num_experts / num_ranks;
  const int k = w.num_topk;
  const int my_domain = rank_idx / G, my_index = rank_idx % G;
  MdRows rows;
  TokenReach reach(num_ranks, num_ranks / G);
  for (int src = 0; src < num_ranks; ++src) {
    const int src_domain = src / G;
    const bool mine = src == rank_idx;
    const bool forwarded_here = src % G == my_index;  // (s, i) sends to forwarder (d, i)
    if (!mine && !forwarded_here) continue;
    const auto& topk_idx = routings[src].topk_idx;
    BENCH_CHECK_ARG(static_cast<std::int64_t>(topk_idx.size()) == w.num_tokens * k, "routings[", src,
                    "].topk_idx: expected ", w.num_tokens * k, " entries, given ", topk_idx.size());
    for (std::int64_t t = 0; t < w.num_tokens; ++t) {
      reach.clear(G);
      for (int slot = 0; slot < k; ++slot) {
        const std::int64_t expert = topk_idx[t * k + slot];
        if (expert >= 0) reach.add(static_cast<int>(expert / num_local_experts), G);
      }
      if (mine) {
        for (int d = 0; d < static_cast<int>(reach.per_domain.size()); ++d) {
          if (d == src_domain || reach.per_domain[d] == 0) continue;
          ++rows.nic_send;
          rows.nic_send_single += reach.per_domain[d] == 1;
        }
      }
      if (!forwarded_here) continue;
      const int here = reach.per_domain[my_domain];
      if (src_domain != my_domain && here > 0) {
        ++rows.nic_recv;
        rows.nic_recv_single += here == 1;
      }
      rows.nvl += here - reach.rank[rank_idx];  // every reached rank of this domain but itself
    }
  }
  return rows;
}

MdBytes md_bytes(const MdRows& rows, const MultiDomainRowBytes& per_row, MdOpKind op) {
  const auto f32 = static_cast<double>(per_row.combine_put_f32);
  const auto bf16 = static_cast<double>(per_row.combine_put_bf16);
  const auto partials = [&](std::int64_t all, std::int64_t single) {
    return static_cast<double>(all - single) * f32 + static_cast<double>(single) * bf16;
  };
  MdBytes b;
  if (op == MdOpKind::kDispatch) {
    b.nic_sent = static_cast<double>(rows.nic_send) * static_cast<double>(per_row.dispatch_put);
    b.nic_recv = static_cast<double>(rows.nic_recv) * static_cast<double>(per_row.dispatch_put);
    b.nvl = static_cast<double>(rows.nvl) * static_cast<double>(per_row.nvl_dispatch_row);
  } else {
    // A forwarder sends back a partial for every row it received; the owner gets one per row sent.
    b.nic_sent = partials(rows.nic_recv, rows.nic_recv_single);
    b.nic_recv = partials(rows.nic_send, rows.nic_send_single);
    b.nvl = static_cast<double>(rows.nvl) * static_cast<double>(per_row.nvl_combine_row);
  }
  return b;
}

double md_nic_floor_us(const MdBytes& bytes, double nic_gbps) {
  BENCH_CHECK_ARG(nic_gbps > 0, "nic_gbps: expected > 0, given ", nic_gbps);
  return std::max(bytes.nic_sent, bytes.nic_recv) / (nic_gbps * 1e3);
}

}  // namespace epcomm::bench
