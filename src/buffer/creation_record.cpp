#include "buffer/creation_record.hpp"

#include "core/check.hpp"

namespace epcomm {

namespace {

const char* kind_of(const CreationRecord& r) {
  return r.low_latency ? "a low-latency" : "a high-throughput";
}

template <typename T>
std::string differs(const char* name, T mine, T theirs, int their_rank) {
  return detail::concat(name, " is ", mine, " here but ", theirs, " at rank ", their_rank);
}

}  // namespace

CreationRecord make_creation_record(const LowLatencyOptions* low_latency, std::int64_t region_bytes) {
  CreationRecord r;
  r.region_bytes = region_bytes;
  if (low_latency != nullptr) {
    r.low_latency = 1;
    r.num_experts = low_latency->num_experts;
    r.max_topk = low_latency->max_topk;
    r.max_tokens_per_rank = low_latency->max_tokens_per_rank;
    r.hidden = low_latency->hidden;
  }
  return r;
}

std::string creation_difference(const CreationRecord& mine, const CreationRecord& theirs, int my_rank,
                                int their_rank) {
  if (mine.low_latency != theirs.low_latency)
    return detail::concat("Buffer: the ranks' Buffers differ: rank ", their_rank, " made ", kind_of(theirs),
                          " Buffer, rank ", my_rank, " ", kind_of(mine),
                          " one; every rank must make the same kind of Buffer with the same options");
  std::string what;
  if (mine.max_tokens_per_rank != theirs.max_tokens_per_rank)
    what = differs("max_tokens_per_rank", mine.max_tokens_per_rank, theirs.max_tokens_per_rank, their_rank);
  else if (mine.hidden != theirs.hidden)
    what = differs("hidden", mine.hidden, theirs.hidden, their_rank);
  else if (mine.num_experts != theirs.num_experts)
    what = differs("num_experts", mine.num_experts, theirs.num_experts, their_rank);
  else if (mine.max_topk != theirs.max_topk)
    what = differs("max_topk", mine.max_topk, theirs.max_topk, their_rank);
  if (!what.empty())
    return detail::concat(
        "Buffer: LowLatencyOptions differ: ", what,
        "; every rank must pass the same max_tokens_per_rank, hidden, num_experts and max_topk");
  if (mine.region_bytes != theirs.region_bytes)
    return detail::concat("num_nvl_bytes: every rank must pass the same value; rank ", their_rank,
                          " has a region of ", theirs.region_bytes, " bytes, rank ", my_rank, " of ",
                          mine.region_bytes);
  return {};
}

std::string first_creation_difference(const std::vector<CreationRecord>& every, int my_rank,
                                      int domain_ranks) {
  const CreationRecord& mine = every.at(static_cast<std::size_t>(my_rank));
  const int n = static_cast<int>(every.size());
  // The kind and the options, every rank against this one.
  for (int r = 0; r < n; ++r) {
    CreationRecord theirs = every[static_cast<std::size_t>(r)];
    theirs.region_bytes = mine.region_bytes;
    std::string difference = creation_difference(mine, theirs, my_rank, r);
    if (!difference.empty()) return difference;
  }
  // The region, within each domain: this rank's peers against this rank, every other domain's
  // ranks against their domain's first, so that every rank refuses alike (a domain that passed
  // would wait for the others in the next collective step until the bootstrap's timeout).
  const int my_first = my_rank / domain_ranks * domain_ranks;
  for (int r = my_first; r < my_first + domain_ranks && r < n; ++r) {
    std::string difference = creation_difference(mine, every[static_cast<std::size_t>(r)], my_rank, r);
    if (!difference.empty()) return difference;
  }
  for (int r = 0; r < n; ++r) {
    const int first = r / domain_ranks * domain_ranks;
    if (first == my_first) continue;
    const std::int64_t theirs = every[static_cast<std::size_t>(r)].region_bytes;
    const std::int64_t domain = every[static_cast<std::size_t>(first)].region_bytes;
    if (theirs != domain)
      return detail::concat("num_nvl_bytes: every rank of an NVLink domain must pass the same value; rank ",
                            r, " has a region of ", theirs, " bytes, rank ", first, " of its domain (",
                            r / domain_ranks, ") of ", domain);
  }
  return {};
}

}  // namespace epcomm
