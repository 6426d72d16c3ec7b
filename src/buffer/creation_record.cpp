#include "buffer/creation_record.hpp"

#include "core/check.hpp"

namespace epcomm {

namespace {

const char* kind_of(const CreationRecord& r) { return r.low_latency ? "a low-latency" : "a high-throughput"; }

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
    return detail::concat("Buffer: LowLatencyOptions differ: ", what,
                          "; every rank must pass the same max_tokens_per_rank, hidden, num_experts and max_topk");
  if (mine.region_bytes != theirs.region_bytes)
    return detail::concat("num_nvl_bytes: every rank must pass the same value; rank ", their_rank,
                          " has a region of ", theirs.region_bytes, " bytes, rank ", my_rank, " of ",
                          mine.region_bytes);
  return {};
}

std::string first_creation_difference(const std::vector<CreationRecord>& every, int my_rank, int domain_first,
                                      int domain_ranks) {
  const CreationRecord& mine = every.at(static_cast<std::size_t>(my_rank));
  for (int r = 0; r < static_cast<int>(every.size()); ++r) {
    CreationRecord theirs = every[static_cast<std::size_t>(r)];
    if (r < domain_first || r >= domain_first + domain_ranks) theirs.region_bytes = mine.region_bytes;
    std::string difference = creation_difference(mine, theirs, my_rank, r);
    if (!difference.empty()) return difference;
  }
  return {};
}

}  // namespace epcomm
