// The op interface of epcomm-bench. Every measured thing (the NCCL baseline today, epcomm's own
// dispatch/combine tomorrow) is a BenchOp; factories turn a workload into ops, and ops.cpp lists
// the factories. To add epcomm's ops: write `std::vector<BenchOp> make_epcomm_ops(BenchContext&)`
// in its own file and append it to op_factories() in ops.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/device_inputs.hpp"
#include "bench/expected.hpp"
#include "bench/md_traffic.hpp"
#include "bench/preamble.hpp"
#include "bench/session.hpp"
#include "bench/workload.hpp"
#include "epcomm/telemetry.hpp"

namespace epcomm::bench {

struct BenchOp {
  std::string impl = "epcomm";  // "epcomm"; "nccl" (the baseline); "nccl-a2av" (its raw row exchange)
  std::string op;               // docs/benchmark.md: dispatch, combine, dispatch+combine, dispatch-send, ...
  std::string dtype;            // "bf16" or "fp8"
  int num_sms = 0;              // SMs the op may use; 0 = not set by the benchmark
  int min_ranks = 1;            // on fewer ranks the op is skipped with a note
  double recv_bytes = 0;        // logical bytes: received rows on this rank, local ones included
                                // (combine: the byte count of its dispatch)
  double wire_bytes = 0;        // bytes this rank sends to other GPUs in one call
  // On a multi-domain Buffer: this rank's bytes through its NIC and over NVLink in one call,
  // counted from the routing of the timed calls (bench/md_traffic.hpp).
  std::optional<MdBytes> md_bytes;
  // Optional, untimed, before the first call (e.g. a dispatch that produces combine's input); run
  // again on the check inputs before the checked call (see `check`).
  std::function<void(cudaStream_t)> setup;
  // One call, timed with events on `stream`. May synchronize the host (the NCCL baseline does).
  std::function<void(cudaStream_t)> run;
  // Optional, before the checked call: writes the poison (bench/poison.hpp) over every output of
  // that call that lives in memory the call does not allocate (zero-copy views of the region,
  // low-latency outputs, the baseline's buffers); outputs the call allocates are poisoned by the
  // Session's allocator. May make untimed calls first, to learn where those outputs lie. Collective.
  std::function<void(cudaStream_t)> poison;
  // Optional: compares the outputs of the checked call with the CPU reference of the check inputs,
  // element by element, with the reference's element counts; returns false (after printing every
  // failed comparison) on any difference. The runner makes that call after the timed ones: check
  // inputs loaded (other routing and payload than the timed calls'), `setup` again, `poison`, every
  // rank past a barrier, then one `run` with the allocator poisoning what it hands out. Absent, or
  // --no-check, reports "skip".
  std::function<bool()> check;
  // Optional: the summed kernel duration of the last timed call in microseconds (device clock or
  // profiler); read before the checked call.
  std::function<double()> kernel_us;
  // Optional, collective: after the timed calls and `after` (before the checked call), a separate
  // pass of `calls` calls that measures this rank's median preamble of a high-throughput dispatch,
  // in each form (bench/preamble.hpp: layout plus notify, device time).
  std::function<PreambleTimes(cudaStream_t, int calls, double hold_us)> preamble_us;
  // Optional: this rank's per-peer telemetry of the op's Buffer (Buffer::peer_telemetry), zeroed
  // after reading with `clear`; set on epcomm's ops when the run has --telemetry. The runner clears
  // it before the warm-up and reads it after the timed calls.
  std::function<std::vector<PeerTraffic>(bool clear)> telemetry;
  // Optional: after the timed calls (before the checked call), prints this rank's diagnostics.
  std::function<void()> after;
};

// Everything an op factory may use for one workload variant.
struct BenchContext {
  Session& session;
  const Workload& workload;
  const DeviceInputs& inputs;  // this rank's inputs on its GPU (inputs.loaded: which set)
  const Traffic& traffic;      // this rank's row counts in the timed calls (from every rank's routing)
  const std::optional<MdRows>& md_rows;  // with Session::ranks_per_domain(): its multi-domain rows
  // The CPU reference of the check inputs for this rank, computed on first call (seconds for ht
  // workloads); only call it from a check.
  std::function<const ExpectedHt&()> expected_ht;
};

using OpFactory = std::function<std::vector<BenchOp>(BenchContext&)>;

// The ops measured for every workload, in order. Every rank must produce the same list.
std::vector<OpFactory> op_factories();

}  // namespace epcomm::bench
