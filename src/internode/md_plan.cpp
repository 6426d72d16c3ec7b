#include "internode/md_plan.hpp"

#include <algorithm>

#include "core/check.hpp"
#include "core/domain_view.hpp"
#include "internode/md_route.hpp"

namespace epcomm {

MdGeometry MdGeometry::make(int num_ranks, int ranks_per_domain, int num_experts) {
  EPCOMM_CHECK_ARG(ranks_per_domain >= 1 && ranks_per_domain <= kMaxDomainRanks,
                   "ranks_per_domain: expected 1 to ", kMaxDomainRanks, " ranks per NVLink domain, got ",
                   ranks_per_domain);
  EPCOMM_CHECK_ARG(num_ranks >= 1 && num_ranks % ranks_per_domain == 0,
                   "num_ranks: expected a positive multiple of ranks_per_domain=", ranks_per_domain, ", got ",
                   num_ranks);
  const int num_domains = num_ranks / ranks_per_domain;
  EPCOMM_CHECK_ARG(num_domains <= kMdMaxDomains, "num_ranks: at most ", kMdMaxDomains,
                   " domains (num_ranks / ranks_per_domain) are supported, got ", num_ranks, " / ",
                   ranks_per_domain, " = ", num_domains);
  EPCOMM_CHECK_ARG(num_experts > 0 && num_experts % num_ranks == 0,
                   "num_experts: expected a positive multiple of num_ranks=", num_ranks, ", got ", num_experts);
  const int num_local_experts = num_experts / num_ranks;
  EPCOMM_CHECK_ARG(num_local_experts <= kMdMaxLocalExperts, "num_experts: at most ", kMdMaxLocalExperts,
                   " local experts per rank (num_experts / num_ranks) in multi-domain mode, got ", num_experts,
                   " / ", num_ranks, " = ", num_local_experts);
  const MdDomainRecord record{num_domains, ranks_per_domain, num_local_experts};
  EPCOMM_CHECK_ARG(record.ints() <= MdDomainRecord::kCapacityInts,
                   "num_ranks: a domain's count record holds num_ranks + num_experts / num_ranks <= ",
                   MdDomainRecord::kCapacityInts, " counts, got ", num_ranks, " + ", num_local_experts);
  return MdGeometry{num_ranks, ranks_per_domain, num_experts};
}

std::vector<std::int32_t> md_count_record(const MdGeometry& geometry, const MdSourceTokens& tokens, int src_rank,
                                          int dst_domain, int num_channels) {
  EPCOMM_CHECK_ARG(num_channels >= 1 && num_channels <= kMdMaxChannels, "num_channels: expected 1 to ",
                   kMdMaxChannels, ", got ", num_channels);
  EPCOMM_CHECK_ARG(src_rank >= 0 && src_rank < geometry.num_ranks, "src_rank: expected [0, ", geometry.num_ranks,
                   "), got ", src_rank);
  EPCOMM_CHECK_ARG(dst_domain >= 0 && dst_domain < geometry.num_domains(), "dst_domain: expected [0, ",
                   geometry.num_domains(), "), got ", dst_domain);
  const int G = geometry.ranks_per_domain, nle = geometry.num_local_experts();
  const MdCountRecord rec{num_channels, G, nle};
  std::vector<std::int32_t> out(static_cast<std::size_t>(rec.ints()), 0);
  std::vector<char> reached(static_cast<std::size_t>(G));
  for (std::int64_t t = 0; t < tokens.num_tokens; ++t) {
    std::fill(reached.begin(), reached.end(), 0);
    bool any = false;
    for (int slot = 0; slot < tokens.num_topk; ++slot) {
      const std::int64_t expert = tokens.topk_idx[t * tokens.num_topk + slot];
      if (expert < 0) continue;
      const int rank = geometry.rank_of_expert(expert);
      if (geometry.domain_of(rank) != dst_domain) continue;
      const int j = geometry.local_index(rank);
      reached[static_cast<std::size_t>(j)] = 1;
      any = true;
      ++out[static_cast<std::size_t>(rec.per_expert(j, static_cast<int>(expert % nle)))];
    }
    if (!any) continue;
    const int c = md_channel_of(tokens.num_tokens, t, num_channels);
    ++out[static_cast<std::size_t>(rec.tokens(c))];
    for (int j = 0; j < G; ++j)
      if (reached[static_cast<std::size_t>(j)]) ++out[static_cast<std::size_t>(rec.to_rank(c, j))];
  }
  return out;
}

std::vector<std::int32_t> md_domain_record(const MdGeometry& geometry,
                                           const std::vector<std::vector<std::int32_t>>& records, int num_channels,
                                           int j) {
  const int D = geometry.num_domains(), G = geometry.ranks_per_domain, nle = geometry.num_local_experts();
  EPCOMM_CHECK_ARG(static_cast<int>(records.size()) == D, "records: expected one per domain (", D, "), got ",
                   records.size());
  const MdCountRecord rec{num_channels, G, nle};
  const MdDomainRecord out_rec{D, G, nle};
  std::vector<std::int32_t> out(static_cast<std::size_t>(out_rec.ints()), 0);
  for (int s = 0; s < D; ++s) {
    const std::vector<std::int32_t>& in = records[static_cast<std::size_t>(s)];
    EPCOMM_CHECK_ARG(static_cast<int>(in.size()) == rec.ints(), "records[", s, "]: expected ", rec.ints(),
                     " ints, got ", in.size());
    for (int c = 0; c < num_channels; ++c)
      for (int jj = 0; jj < G; ++jj)
        out[static_cast<std::size_t>(out_rec.count(s, jj))] += in[static_cast<std::size_t>(rec.to_rank(c, jj))];
    for (int e = 0; e < nle; ++e)
      out[static_cast<std::size_t>(out_rec.per_expert(e))] += in[static_cast<std::size_t>(rec.per_expert(j, e))];
  }
  return out;
}

MdDomainCounts md_domain_counts(const MdGeometry& geometry,
                                const std::vector<std::vector<std::int32_t>>& domain_records, int j) {
  const int D = geometry.num_domains(), G = geometry.ranks_per_domain, nle = geometry.num_local_experts();
  EPCOMM_CHECK_ARG(static_cast<int>(domain_records.size()) == G, "domain_records: expected one per forwarder (",
                   G, "), got ", domain_records.size());
  const MdDomainRecord rec{D, G, nle};
  MdDomainCounts out;
  out.counts.assign(static_cast<std::size_t>(geometry.num_ranks) * G, 0);
  out.per_expert.assign(static_cast<std::size_t>(nle), 0);
  for (int i = 0; i < G; ++i) {
    const std::vector<std::int32_t>& in = domain_records[static_cast<std::size_t>(i)];
    EPCOMM_CHECK_ARG(static_cast<int>(in.size()) == rec.ints(), "domain_records[", i, "]: expected ", rec.ints(),
                     " ints, got ", in.size());
    for (int s = 0; s < D; ++s)
      for (int jj = 0; jj < G; ++jj)
        out.counts[static_cast<std::size_t>((s * G + i) * G + jj)] = in[static_cast<std::size_t>(rec.count(s, jj))];
    for (int e = 0; e < nle; ++e) out.per_expert[static_cast<std::size_t>(e)] += in[static_cast<std::size_t>(rec.per_expert(e))];
  }
  for (int r = 0; r < geometry.num_ranks; ++r) out.num_recv_rows += out.counts[static_cast<std::size_t>(r * G + j)];
  return out;
}

}  // namespace epcomm
