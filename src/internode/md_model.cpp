#include "internode/md_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.hpp"
#include "internode/md_plan.hpp"
#include "intranode/ht_layout.hpp"

namespace epcomm {

namespace {

// log C(n, r); -inf when r < 0 or r > n (no way to choose).
double log_choose(int n, int r) {
  if (r < 0 || r > n) return -std::numeric_limits<double>::infinity();
  return std::lgamma(n + 1.0) - std::lgamma(r + 1.0) - std::lgamma(n - r + 1.0);
}

// P(none of k distinct uniform picks among E falls in a set of `size` experts).
double p_miss(int num_experts, int num_topk, int size) {
  return std::exp(log_choose(num_experts - size, num_topk) - log_choose(num_experts, num_topk));
}

}  // namespace

MdRoutingOdds md_uniform_routing(int num_experts, int num_topk, int ranks_per_domain, int num_domains) {
  const int R = ranks_per_domain * num_domains;
  MdGeometry::make(R, ranks_per_domain, num_experts);
  EPCOMM_CHECK_ARG(num_topk >= 1 && num_topk <= num_experts, "num_topk: expected 1 to num_experts=", num_experts,
                   " (distinct experts), got ", num_topk);
  const int m = num_experts / R;  // experts per rank
  MdRoutingOdds odds;
  odds.p_rank = 1.0 - p_miss(num_experts, num_topk, m);
  odds.p_domain = 1.0 - p_miss(num_experts, num_topk, m * ranks_per_domain);
  // a of the picks on one rank of the domain, none on its other ranks: G x C(m, a) x C(E - G m, k - a).
  for (int a = 1; a <= std::min(num_topk, m); ++a) {
    odds.p_one_rank += ranks_per_domain * std::exp(log_choose(m, a) +
                                                   log_choose(num_experts - m * ranks_per_domain, num_topk - a) -
                                                   log_choose(num_experts, num_topk));
  }
  odds.ranks_per_token = R * odds.p_rank;
  odds.domains_per_token = num_domains * odds.p_domain;
  odds.remote_domains_per_token = (num_domains - 1) * odds.p_domain;
  return odds;
}

MdTraffic md_traffic(const MdShape& shape) {
  const MdSlot dispatch = md_dispatch_slot(shape);  // checks the shape
  const MdSlot combine = md_combine_slot(shape);
  MdTraffic t;
  t.odds = md_uniform_routing(shape.num_experts, shape.num_topk, shape.ranks_per_domain, shape.num_domains);
  const auto T = static_cast<double>(shape.num_tokens);
  const double G = shape.ranks_per_domain, D = shape.num_domains;

  t.dispatch_put_bytes = static_cast<double>(dispatch.put_bytes_full);
  const double f32 = static_cast<double>(combine.put_bytes(false)), bf16 = static_cast<double>(combine.put_bytes(true));
  const double one_rank = t.odds.p_domain > 0 ? t.odds.p_one_rank / t.odds.p_domain : 0.0;  // given the domain
  t.combine_put_bytes[static_cast<int>(MdPartial::kFloat32)] = f32;
  t.combine_put_bytes[static_cast<int>(MdPartial::kAdaptive)] = one_rank * bf16 + (1.0 - one_rank) * f32;
  t.combine_put_bytes[static_cast<int>(MdPartial::kBFloat16)] = bf16;

  t.nic_rows = T * t.odds.remote_domains_per_token;
  t.nic_dispatch_bytes = t.nic_rows * t.dispatch_put_bytes;
  for (int p = 0; p < kMdNumPartials; ++p) t.nic_combine_bytes[p] = t.nic_rows * t.combine_put_bytes[p];

  // A forwarder (d, i) handles the tokens of the D ranks (s, i), its own included, and writes each
  // to the ranks (d, j != i) holding one of its experts.
  t.nvl_rows = D * T * (G - 1) * t.odds.p_rank;
  const HtDispatchLayout row = HtDispatchLayout::make(0, dispatch.row_bytes, dispatch.num_scales, shape.num_topk, 8);
  t.nvl_dispatch_bytes = t.nvl_rows * static_cast<double>(row.bytes_per_row());
  t.nvl_combine_bytes = t.nvl_rows * static_cast<double>(shape.hidden * 2 + 4 * shape.num_topk);

  const double payload = static_cast<double>(shape.hidden) * 2 * (shape.fp8 ? (1.0 + 4.0 / 128) / 2 : 1.0);
  t.reference_counted_dispatch_bytes = T * t.odds.domains_per_token * payload;
  t.reference_counted_combine_bytes = T * t.odds.domains_per_token * static_cast<double>(shape.hidden) * 2;
  return t;
}

double md_transfer_us(double bytes, double gb_per_s) {
  EPCOMM_CHECK_ARG(gb_per_s > 0, "gb_per_s: expected > 0, got ", gb_per_s);
  return bytes / (gb_per_s * 1e3);
}

}  // namespace epcomm
