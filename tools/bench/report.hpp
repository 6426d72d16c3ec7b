// Results: the printed nccl-tests-style table, the JSON file of docs/benchmark.md ("Result format"), and CSV.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/telemetry.hpp"
#include "common/json_quote.hpp"

namespace epcomm::bench {

// A row's traffic on a multi-domain Buffer (bench/md_traffic.hpp), each field the busiest rank's.
struct MdRowFields {
  double nic_sent_bytes = 0;  // bytes this rank's NIC sends to other domains in one call
  double nic_recv_bytes = 0;  // bytes it receives from them
  double nvl_bytes = 0;       // dispatch: rows written to other ranks of its domain; combine: read back
  double nic_floor_us = 0;    // max(sent, received) at the run's NIC rate: the least time the call needs
};

// One measured (impl, op, dtype, num_sms, tokens). Bandwidths use the busiest rank's bytes over the
// max-over-ranks median time (runner.cpp).
struct ResultRow {
  std::string impl;   // "epcomm"; "nccl" (the baseline); "nccl-a2av" (the baseline's row exchange alone)
  std::string op;     // docs/benchmark.md: dispatch, combine, dispatch+combine, dispatch-send, ...
  std::string dtype;  // "bf16" or "fp8"
  int num_sms = 0;    // 0: not set by the benchmark (NCCL chooses its own)
  int64_t tokens = 0;
  int64_t hidden = 0;
  double time_us = 0;                     // CUDA events around the whole call
  std::optional<double> kernel_us;        // summed kernel duration, where the op can measure it
  std::optional<double> preamble_us;      // whole high-throughput dispatch: layout + notify kernels
  std::optional<double> preamble_split_us;  // the same in the two-call form (get_dispatch_layout first)
  std::optional<double> preamble_span_us;   // the fused launch's device-clock span (EPCOMM_HT_TRACE=1)
  std::optional<double> batch_us;         // back-to-back calls, per call (timing.hpp)
  std::optional<double> host_us;          // the host's time to issue one call (timing.hpp)
  double logical_gbps = 0;                // received bytes (local rows included) / time
  double wire_gbps = 0;                   // bytes sent to other GPUs / time
  double efficiency = 0;                  // wire_gbps / ceiling_gbps (0 without a ceiling)
  std::optional<double> nccl_time_us;     // the NCCL baseline's time for the same op, dtype, tokens
  std::optional<double> speedup_vs_nccl;  // nccl_time_us / time_us
  std::string check =
      "skip";  // "pass" (every element matched on every rank), "fail", "skip", "error" (threw)
  // false: a correctness-only row (ranks sharing a GPU on a multi-domain Buffer without
  // --shared-gpu-timing): its one call was not timed; time and rates are null.
  bool timed = true;
  std::optional<MdRowFields> multi_domain;  // rows of a multi-domain run
  std::optional<RowTelemetry> telemetry;    // --telemetry: every rank's per-peer counts (bench/telemetry.hpp)
};

// A run on a multi-domain Buffer (--ranks-per-domain, EPCOMM_RANKS_PER_DOMAIN).
struct MdRunInfo {
  int ranks_per_domain = 0;       // G
  int num_domains = 0;            // D
  double nic_gbps = 0;            // the NIC rate of the floors (--nic-gbps)
  bool correctness_only = false;  // ranks shared GPUs without --shared-gpu-timing: no row is timed
};

struct RunReport {
  std::string workload;
  std::string card;  // cudaDeviceProp::name
  int num_gpus = 0;
  std::string commit;
  std::string date;                 // YYYY-MM-DD (UTC)
  std::string command;              // argv joined
  double ceiling_gbps = 0;          // all-pairs peer copy, per GPU outgoing; 0 where not measured
  double ceiling_one_way_gbps = 0;  // one-direction peer copy (printed, not in the JSON shape)
  // Ranks shared GPUs (--shared-gpu-timing): every row is stamped, its timing is of ranks taking
  // turns on a GPU, not NVLink timing.
  bool shared_gpus = false;
  std::optional<MdRunInfo> multi_domain;  // top-level fields of a multi-domain run
  int warmup = 0;                         // printed
  int iters = 0;                          // printed
  int preamble_hold_us = 0;               // printed: the preamble pass's stream hold (RunSettings)
  std::vector<ResultRow> rows;
};

// Stamped on every row of a run whose ranks shared GPUs (table and JSON `shared_gpus`).
inline constexpr const char* kSharedGpuNote = "shared-GPU timing, not NVLink";
// Stamped on every row of a multi-domain run whose ranks shared GPUs without --shared-gpu-timing.
inline constexpr const char* kCorrectnessOnlyNote = "correctness only, not timed";

// ---- formats ------------------------------------------------------------------------------------

using tools::json_escape;  // the contents of a JSON string, without quotes (common/json_quote.hpp)
using tools::json_quote;   // the same between quotes
std::string json_number(double value);           // "null" for NaN/inf; else up to 4 decimals, e.g. "355.0"
std::string to_json(const RunReport& report);    // docs/benchmark.md shape (rows carry "impl" in addition)
std::string format_table(const RunReport& report);
// A multi-domain run's second table: per row, the bytes through the NIC and over NVLink (busiest
// rank), the NIC floor and the time; empty for other runs.
std::string format_md_table(const RunReport& report);
// --telemetry: format_telemetry of every row that has telemetry; empty when none has.
std::string format_run_telemetry(const RunReport& report);
std::string csv_header();
std::string to_csv_rows(const RunReport& report);  // one line per row, the run's fields repeated

// ---- derived fields -----------------------------------------------------------------------------

// Fills nccl_time_us and speedup_vs_nccl of every row from the impl == "nccl" row of the same op,
// dtype and tokens (the NCCL rows themselves get speed-up 1).
void fill_nccl_comparison(std::vector<ResultRow>& rows);
// The epcomm rows whose efficiency is below `min_efficiency`.
std::vector<ResultRow> rows_below_efficiency(const std::vector<ResultRow>& rows, double min_efficiency);

// Per (op, dtype, num_sms, tokens), the fastest row among epcomm's variants of the whole call
// (impl "epcomm" or "epcomm-...", not "epcomm-cached": a cached dispatch skips the layout and the
// count exchange), in the order the groups first appear; a group whose rows failed their check
// is left out.
std::vector<ResultRow> fastest_epcomm_rows(const std::vector<ResultRow>& rows);
// One "# fastest: ..." line per row of fastest_epcomm_rows (variant, time, efficiency, speed-up).
std::string format_fastest(const std::vector<ResultRow>& fastest);

// ---- run facts and files ------------------------------------------------------------------------

// Where the JSON of `workload` goes: "{workload}" in `path` is replaced by the name; otherwise, when
// the run has several workloads, "-<workload>" is inserted before the extension.
std::string output_path_for(const std::string& path, const std::string& workload, bool several_workloads);
std::string utc_date_today();
// `env_commit` (EPCOMM_COMMIT) when non-empty, else the commit seen at configure time, else "unknown".
std::string commit_id(const std::string& env_commit);
// argv joined by spaces; an argument with spaces or shell characters is single-quoted.
std::string join_command(int argc, const char* const* argv);
// Throws epcomm::Error (invalid argument) naming the path when it cannot be written.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace epcomm::bench
