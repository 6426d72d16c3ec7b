// Multi-domain mode, host side: the group's geometry and its checks, and the count records a
// dispatch exchanges before its rows (what the notify kernels will compute on the device; the
// CPU tests run the whole route on these, tests/cpu/test_internode_route.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "internode/md_slot.hpp"

namespace epcomm {

struct MdGeometry {
  int num_ranks = 0;         // R = G x D
  int ranks_per_domain = 0;  // G
  int num_experts = 0;       // E, a multiple of R

  int num_domains() const { return num_ranks / ranks_per_domain; }
  int num_local_experts() const { return num_experts / num_ranks; }
  int domain_of(int rank) const { return rank / ranks_per_domain; }
  int local_index(int rank) const { return rank % ranks_per_domain; }
  int rank_of_expert(std::int64_t expert) const { return static_cast<int>(expert / num_local_experts()); }

  // Checks every bound of the mode; epcomm::Error (kInvalidArgument) names the argument, what was
  // expected and what was given.
  static MdGeometry make(int num_ranks, int ranks_per_domain, int num_experts);
};

// One source rank's routing: topk_idx [T, k] (-1: empty slot), global expert ids.
struct MdSourceTokens {
  std::int64_t num_tokens = 0;
  int num_topk = 0;
  const std::int64_t* topk_idx = nullptr;
};

// The MdCountRecord (ints) source rank src_rank sends to the forwarder of dst_domain (its own
// domain included: then it is the forwarder) for C channels.
std::vector<std::int32_t> md_count_record(const MdGeometry& geometry, const MdSourceTokens& tokens, int src_rank,
                                          int dst_domain, int num_channels);

// The MdDomainRecord forwarder (d, i) writes to rank (d, j), from the count records it received
// from every (s, i) (records[s], s in [0, D), its own included).
std::vector<std::int32_t> md_domain_record(const MdGeometry& geometry,
                                           const std::vector<std::vector<std::int32_t>>& records, int num_channels,
                                           int j);

// What rank (d, j) learns from the G forwarders' records (domain_records[i], each written to j):
// counts [R][G] (tokens of source rank r reaching (d, j')), for md_first_row, and its received
// rows per local expert (unrounded).
struct MdDomainCounts {
  std::vector<std::int32_t> counts;      // [R][G]
  std::vector<std::int64_t> per_expert;  // [nle]
  std::int64_t num_recv_rows = 0;        // rows rank (d, j) receives
};
MdDomainCounts md_domain_counts(const MdGeometry& geometry,
                                const std::vector<std::vector<std::int32_t>>& domain_records, int j);

}  // namespace epcomm
