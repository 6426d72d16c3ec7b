#include "bench/runner.hpp"

#include <cstdio>
#include <exception>

#include "bench/cuda.hpp"
#include "bench/poison_device.hpp"
#include "bench/stats.hpp"
#include "bench/telemetry.hpp"
#include "epcomm/error.hpp"

namespace epcomm::bench {

namespace {

// The checked call and its data check (BenchOp::check). Throwing counts as a failure on this rank;
// the timed inputs are loaded back either way.
bool checked_call(Session& session, DeviceInputs& inputs, BenchOp& op, cudaStream_t stream) {
  bool ok = false;
  try {
    inputs.load(InputSet::kCheck, stream);
    if (op.setup) op.setup(stream);
    if (op.poison) op.poison(stream);
    BENCH_CUDA(cudaDeviceSynchronize());
    // NOTE: every rank's poison is in place before any peer's checked call writes into it.
    session.bootstrap().barrier();
    {
      const ArmedPoison armed(*session.allocator());
      op.run(stream);
    }
    BENCH_CUDA(cudaDeviceSynchronize());
    ok = op.check();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: checked call of %s %s %s threw: %s\n", session.rank(),
                 op.impl.c_str(), op.op.c_str(), op.dtype.c_str(), e.what());
    ok = false;
  }
  inputs.load(InputSet::kTimed, stream);
  return ok;
}

// The op's preamble pass (BenchOp::preamble_us); nothing on this rank when it threw (its row keeps
// its time: the timed calls ran).
PreambleTimes preamble_pass(Session& session, BenchOp& op, cudaStream_t stream, const RunSettings& settings) {
  try {
    return op.preamble_us(stream, settings.timing.iters, settings.preamble_hold_us);
  } catch (const Error& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: preamble pass of %s %s %s threw: %s\n", session.rank(),
                 op.impl.c_str(), op.op.c_str(), op.dtype.c_str(), e.what());
    return {};
  }
}

// The busiest rank's multi-domain bytes (each field its own maximum) and the floor they imply.
// Collective.
MdRowFields md_row_fields(Bootstrap& bootstrap, const MdBytes& mine, double nic_gbps) {
  const MdBytes busiest{max_over_ranks(bootstrap, mine.nic_sent), max_over_ranks(bootstrap, mine.nic_recv),
                        max_over_ranks(bootstrap, mine.nvl)};
  return MdRowFields{.nic_sent_bytes = busiest.nic_sent,
                     .nic_recv_bytes = busiest.nic_recv,
                     .nvl_bytes = busiest.nvl,
                     .nic_floor_us = md_nic_floor_us(busiest, nic_gbps)};
}

}  // namespace

std::optional<ResultRow> run_op(Session& session, const Workload& workload, DeviceInputs& inputs, BenchOp& op,
                                cudaStream_t stream, L2Flusher& flusher, const RunSettings& settings) {
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
    BENCH_CUDA(cudaStreamSynchronize(stream));
    if (op.telemetry) op.telemetry(/*clear=*/true);  // the row counts its warm-up and timed calls only
    timing = time_calls(bootstrap, op.run, stream, settings.timing, flusher);
    BENCH_CUDA(cudaDeviceSynchronize());
  } catch (const Error& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: %s %s %s threw: %s\n", session.rank(), op.impl.c_str(),
                 op.op.c_str(), op.dtype.c_str(), e.what());
    ran = false;
  }
  if (!all_ranks_true(bootstrap, ran)) {
    row.check = "error";
    return row;
  }
  row.timed = !settings.correctness_only;
  row.time_us = row.timed ? timing.max_us : 0.0;
  if (row.timed) {
    row.batch_us = timing.batch_us;
    row.host_us = timing.host_us;
  }
  if (op.md_bytes) row.multi_domain = md_row_fields(bootstrap, *op.md_bytes, settings.nic_gbps);
  // Diagnostics of the timed calls, before the checked call replaces "the last call".
  if (op.telemetry) {
    const std::vector<RankTraffic> all = gather_telemetry(bootstrap, op.telemetry(/*clear=*/false));
    row.telemetry = summarize_telemetry(all, settings.timing.warmup + 2 * settings.timing.iters);  // two timed loops
  }
  if (op.kernel_us && row.timed) row.kernel_us = max_over_ranks(bootstrap, op.kernel_us());
  if (op.after) op.after();
  if (op.preamble_us && row.timed) {
    const PreambleTimes pass = preamble_pass(session, op, stream, settings);
    row.preamble_us = max_over_ranks_if_all(bootstrap, pass.us);
    row.preamble_split_us = max_over_ranks_if_all(bootstrap, pass.split_us);
    row.preamble_span_us = max_over_ranks_if_all(bootstrap, pass.span_us);
  }
  if (settings.check && op.check) {
    const bool ok = checked_call(session, inputs, op, stream);
    row.check = all_ranks_true(bootstrap, ok) ? "pass" : "fail";
  }

  const double recv_bytes = max_over_ranks(bootstrap, op.recv_bytes);
  const double wire_bytes = max_over_ranks(bootstrap, op.wire_bytes);
  const double seconds = row.time_us * 1e-6;
  if (seconds > 0) {
    row.logical_gbps = recv_bytes / seconds / 1e9;
    row.wire_gbps = wire_bytes / seconds / 1e9;
  }
  row.efficiency = settings.ceiling_gbps > 0 ? row.wire_gbps / settings.ceiling_gbps : 0.0;
  return row;
}

}  // namespace epcomm::bench
