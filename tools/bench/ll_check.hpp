// The data check of the low-latency rows (bench/epcomm_ll_ops.cpp), on host copies of the outputs.
// Plain C++ (no CUDA).
//
// Dispatch: recv_count exactly; per (expert, source) the range's row count and the rows as a set of
// tokens (matched through layout_range and src_info, as tests/gpu/test_ll.cpp does); then every
// payload byte and scale of the rows, put in the reference's row order. Combine: its input y holds,
// in the row of token t of source s in expert e, values that depend only on (e, s, t, channel) and
// the input set, so each rank computes its combine result alone, without the others' layouts.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/compare.hpp"
#include "bench/workload.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {

// The BF16 value of y at `key` (splitmix64, mapped to [-2, 2)).
uint16_t y_value(uint64_t key);
// The key of channel 0 of the y row holding token t of source rank s in global expert e; the check
// set's keys are offset by kCheckSeedOffset, so its y differs from the timed calls'.
uint64_t y_key(const Workload& w, int num_ranks, int64_t expert_idx, int src_rank, int64_t token_idx,
               InputSet set);

struct ExpectedLl {
  ref::LlRankOutput dispatch;     // this rank's FP8 dispatch
  std::vector<uint16_t> combine;  // [T, hidden]: sum over k of w[t,k] * y of (e = topk[t,k], me, t)
                                  // in ref::ll_combine's order
};

// This rank's results for the inputs of `set` (every rank's inputs are generated).
ExpectedLl compute_expected_ll(const Workload& w, int num_ranks, int rank_idx, InputSet set);

// One dispatch's outputs on the host: recv_x holds the valid rows of each expert only.
struct HostLlDispatch {
  std::vector<int32_t> count, src;      // [nle], [nle, cap]
  std::vector<int64_t> ranges;          // [nle, R]
  std::vector<std::vector<uint8_t>> x;  // [nle][count[e] * hidden] FP8
  std::vector<float> scales;            // [nle, S, cap]
};

// cap: rows per local expert (R * T); S: scales per row.
Verdict check_ll_dispatch(const HostLlDispatch& got, const ref::LlRankOutput& want, int num_ranks,
                          int64_t cap, int64_t num_scales, int64_t hidden);

}  // namespace epcomm::bench
