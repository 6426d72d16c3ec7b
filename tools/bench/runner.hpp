// Measures one BenchOp on every rank and turns it into a result row.
#pragma once

#include <cuda_runtime_api.h>

#include <optional>

#include "bench/bench_op.hpp"
#include "bench/report.hpp"
#include "bench/timing.hpp"

namespace epcomm::bench {

struct RunSettings {
  TimingOptions timing;
  bool check = true;        // run the op's data check
  double ceiling_gbps = 0;  // 0: not measured; efficiency is then 0
};

// Collective: setup, warm-up and timed calls, then the data check (its verdict is "pass" only when
// every rank matched), the bytes and kernel time reduced over ranks. Bandwidths divide the busiest
// rank's bytes by the max-over-ranks median time. Returns nothing when the op is skipped (too few
// ranks; the note is printed by rank 0).
std::optional<ResultRow> run_op(Session& session, const Workload& workload, BenchOp& op, cudaStream_t stream,
                                L2Flusher& flusher, const RunSettings& settings);

}  // namespace epcomm::bench
