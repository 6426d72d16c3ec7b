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
  bool check = true;        // make the checked call and run the op's data check
  double ceiling_gbps = 0;  // 0: not measured; efficiency is then 0
  // One untimed call per op (a multi-domain run of ranks sharing a GPU): rows say timed = false.
  bool correctness_only = false;
  double nic_gbps = 0;  // the NIC rate of multi-domain rows' floors
  // The preamble pass holds the stream this long before each call it times (bench/stream_hold.hpp);
  // 0: not at all (its events then include the host's launch latency).
  double preamble_hold_us = 200;
};

// Collective: setup, warm-up and timed calls on the timed inputs, the kernel time and diagnostics;
// then (with settings.check) one checked call on the check inputs with poisoned outputs
// (BenchOp::check says how) and the data check, whose verdict is "pass" only when every rank
// matched; `inputs` holds the timed set again afterwards. Bytes and kernel time are reduced over
// ranks; bandwidths divide the busiest rank's bytes by the max-over-ranks median time. Returns
// nothing when the op is skipped (too few ranks; the note is printed by rank 0).
std::optional<ResultRow> run_op(Session& session, const Workload& workload, DeviceInputs& inputs, BenchOp& op,
                                cudaStream_t stream, L2Flusher& flusher, const RunSettings& settings);

}  // namespace epcomm::bench
