// Geometry checks and the dispatch layout (SPEC "Terms" and "Layout").
#include <cstdint>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

// SPEC "Terms": E % R == 0 (experts split contiguously), R = G x num_domains.
void Geometry::validate() const {
  EPCOMM_CHECK_ARG(num_ranks > 0, "num_ranks: expected > 0, got ", num_ranks);
  EPCOMM_CHECK_ARG(num_experts > 0 && num_experts % num_ranks == 0,
                   "num_experts: expected a positive multiple of num_ranks=", num_ranks, ", got ",
                   num_experts);
  EPCOMM_CHECK_ARG(ranks_per_domain > 0 && num_ranks % ranks_per_domain == 0,
                   "ranks_per_domain: expected a positive divisor of num_ranks=", num_ranks, ", got ",
                   ranks_per_domain);
}

Layout get_dispatch_layout(const Geometry& geometry, const std::vector<int64_t>& topk_idx, int64_t num_tokens,
                           int num_topk) {
  geometry.validate();
  detail::check_topk_idx("topk_idx", topk_idx, num_tokens, num_topk, geometry.num_experts);

  const int num_ranks = geometry.num_ranks;
  const int num_domains = geometry.num_domains();
  Layout layout;
  layout.num_tokens_per_rank.assign(num_ranks, 0);
  layout.num_tokens_per_domain.assign(num_domains, 0);
  layout.num_tokens_per_expert.assign(geometry.num_experts, 0);
  layout.is_token_in_rank.assign(static_cast<size_t>(num_tokens) * num_ranks, 0);

  for (int64_t token_idx = 0; token_idx < num_tokens; ++token_idx) {
    uint8_t* in_rank = layout.is_token_in_rank.data() + token_idx * num_ranks;
    std::vector<uint8_t> in_domain(num_domains, 0);
    for (int slot = 0; slot < num_topk; ++slot) {
      const int64_t expert_idx = topk_idx[token_idx * num_topk + slot];
      if (expert_idx < 0) continue;  // -1: empty slot, ignored
      // Every selection counts, so a token naming one expert in two slots counts twice here.
      ++layout.num_tokens_per_expert[expert_idx];
      const int rank_idx = geometry.rank_of_expert(expert_idx);
      in_rank[rank_idx] = 1;
      in_domain[geometry.domain_of_rank(rank_idx)] = 1;
    }
    // A token counts once per rank (and once per domain) it reaches, however many experts there.
    for (int rank_idx = 0; rank_idx < num_ranks; ++rank_idx)
      layout.num_tokens_per_rank[rank_idx] += in_rank[rank_idx];
    for (int domain_idx = 0; domain_idx < num_domains; ++domain_idx) {
      layout.num_tokens_per_domain[domain_idx] += in_domain[domain_idx];
    }
  }
  return layout;
}

}  // namespace epcomm::ref
