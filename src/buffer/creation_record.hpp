// What each rank tells the others about the Buffer it is making, compared before any region is
// mapped: a rank whose options differ is named with the option, rather than with the region size
// those options led to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/low_latency.hpp"

namespace epcomm {

struct CreationRecord {
  std::int32_t low_latency = 0;  // 1: made with LowLatencyOptions
  std::int32_t num_experts = 0;  // LowLatencyOptions (zero for a high-throughput Buffer)
  std::int32_t max_topk = 0;
  std::int32_t pad = 0;
  std::int64_t max_tokens_per_rank = 0;
  std::int64_t hidden = 0;
  std::int64_t region_bytes = 0;  // the NVLink region num_nvl_bytes led to
};

// `low_latency`: the options of a low-latency Buffer, or null for a high-throughput one.
CreationRecord make_creation_record(const LowLatencyOptions* low_latency, std::int64_t region_bytes);

// Empty when `theirs` (rank `their_rank`'s) matches `mine`; else the sentence saying what differs,
// the Buffer kind and the LowLatencyOptions before the region size.
std::string creation_difference(const CreationRecord& mine, const CreationRecord& theirs, int my_rank,
                                int their_rank);

// Every rank's record compared with `every[my_rank]`: empty when all agree, else the sentence for
// the first that differs. Every rank must make the same kind of Buffer with the same options (ranks
// of other NVLink domains too, so a Buffer spanning domains names the option that differs before
// any NVSHMEM exchange). The region's size must agree within each domain of `domain_ranks`
// consecutive ranks (the peers that map each other's regions; domains may differ): every domain is
// checked, so every rank refuses when any domain's ranks disagree.
std::string first_creation_difference(const std::vector<CreationRecord>& every, int my_rank,
                                      int domain_ranks);

}  // namespace epcomm
