#include "bench/runner.hpp"

#include <cstdio>
#include <exception>

#include "bench/stats.hpp"
#include "epcomm/error.hpp"
#include "core/cuda_check.hpp"

namespace epcomm::bench {

namespace {

// A check that throws counts as a failure on this rank, so the others are not left waiting.
bool run_check(const BenchOp& op, int rank) {
  try {
    return op.check();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: check of %s %s %s threw: %s\n", rank, op.impl.c_str(),
                 op.op.c_str(), op.dtype.c_str(), e.what());
    return false;
  }
}

}  // namespace

std::optional<ResultRow> run_op(Session& session, const Workload& workload, BenchOp& op, cudaStream_t stream,
                                L2Flusher& flusher, const RunSettings& settings) {
  Bootstrap& bootstrap = session.bootstrap();
  if (session.num_ranks() < op.min_ranks) {
    if (session.rank() == 0)
      std::printf("# note: %s %s %s skipped: needs %d ranks, running on %d\n", op.impl.c_str(), op.op.c_str(),
                  op.dtype.c_str(), op.min_ranks, session.num_ranks());
    return std::nullopt;
  }
  ResultRow row;
  row.impl = op.impl;
  row.op = op.op;
  row.dtype = op.dtype;
  row.num_sms = op.num_sms;
  row.tokens = workload.num_tokens;
  row.hidden = workload.hidden;
  // An op that throws (an opt-in variant the driver refuses, a peer timeout) leaves an "error" row
  // and the run goes on to the next op, instead of ending the run and its remaining rows.
  Timing timing;
  bool ran = true;
  try {
    if (op.setup) op.setup(stream);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
    timing = time_calls(bootstrap, op.run, stream, settings.timing, flusher);
    EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const Error& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: %s %s %s threw: %s\n", session.rank(), op.impl.c_str(),
                 op.op.c_str(), op.dtype.c_str(), e.what());
    ran = false;
  }
  if (!all_ranks_true(bootstrap, ran)) {
    row.check = "error";
    return row;
  }
  row.time_us = timing.max_us;
  if (settings.check && op.check) {
    const bool ok = run_check(op, session.rank());
    row.check = all_ranks_true(bootstrap, ok) ? "pass" : "fail";
  }
  if (op.kernel_us) row.kernel_us = max_over_ranks(bootstrap, op.kernel_us());
  if (op.after) op.after();

  const double recv_bytes = max_over_ranks(bootstrap, op.recv_bytes);
  const double wire_bytes = max_over_ranks(bootstrap, op.wire_bytes);
  const double seconds = timing.max_us * 1e-6;
  if (seconds > 0) {
    row.logical_gbps = recv_bytes / seconds / 1e9;
    row.wire_gbps = wire_bytes / seconds / 1e9;
  }
  row.efficiency = settings.ceiling_gbps > 0 ? row.wire_gbps / settings.ceiling_gbps : 0.0;
  return row;
}

}  // namespace epcomm::bench
