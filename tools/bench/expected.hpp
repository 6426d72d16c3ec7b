// What the CPU reference (src/reference) says one rank must receive, for the data check.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/workload.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {

// The high-throughput results of `rank_idx`, computed from every rank's inputs of `set`
// (make_rank_inputs).
struct ExpectedHt {
  ref::HtRankOutput dispatch_bf16;  // recv_x rows of hidden*2 bytes, ordered (source rank, token)
  ref::HtRankOutput dispatch_fp8;   // recv_x rows of hidden bytes; recv_scales [num_recv, hidden/128]
  // Combine of the BF16 dispatch outputs sent straight back (y = recv_x on every rank), unweighted:
  // out[t] = x[t] summed once per rank the token reached, in float32, rounded to BF16 once.
  std::vector<uint16_t> combine_out;        // [T, hidden] BF16
  std::vector<float> combine_topk_weights;  // [T, k]: the received weight rows summed back
};

// Holds every rank's inputs and outputs at once while it runs (about 2 x R x the received bytes of
// one rank at its peak); keeps only this rank's results.
ExpectedHt compute_expected_ht(const Workload& workload, int num_ranks, int rank_idx,
                               InputSet set = InputSet::kTimed);

}  // namespace epcomm::bench
