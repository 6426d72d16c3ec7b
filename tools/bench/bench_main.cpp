// epcomm-bench: the benchmark of docs/benchmark.md. One process per GPU, started by
// `epcomm-run -n N epcomm-bench ...`; prints one nccl-tests-style table per workload (rank 0) and
// writes the docs/benchmark.md result files.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_op.hpp"
#include "bench/ceiling.hpp"
#include "bench/cli.hpp"
#include "bench/cuda.hpp"
#include "bench/device_inputs.hpp"
#include "bench/expected.hpp"
#include "bench/md_traffic.hpp"
#include "bench/nccl_comm.hpp"
#include "bench/report.hpp"
#include "bench/runner.hpp"
#include "bench/timing.hpp"
#include "bench/workload.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "epcomm/gpu_presence.hpp"

namespace epcomm::bench {
namespace {

std::unique_ptr<Bootstrap> make_bootstrap(const BenchEnv& env) {
  if (env.launched) return make_tcp_bootstrap(tcp_bootstrap_options_from_env());
  // One rank without a launcher: the all-gather is a copy.
  return make_callback_bootstrap(0, 1, [](const void* in, void* out, std::size_t bytes) {
    if (bytes > 0) std::memcpy(out, in, bytes);
  });
}

// Every rank's GPU identity (host name and PCI bus id: bus ids repeat across hosts), by rank.
// Collective.
std::vector<std::string> gpu_of_each_rank(Bootstrap& bootstrap, int device) {
  constexpr std::size_t kBusIdBytes = 32;  // cudaDeviceGetPCIBusId writes at most 13 + 1
  constexpr std::size_t kIdBytes = 320;    // a host name (at most 255) and the bus id
  std::array<char, kBusIdBytes> bus{};
  BENCH_CUDA(cudaDeviceGetPCIBusId(bus.data(), static_cast<int>(bus.size()), device));
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  std::array<char, kIdBytes> mine{};
  std::snprintf(mine.data(), mine.size(), "%s %s", host.data(), bus.data());
  std::vector<std::array<char, kIdBytes>> all(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(mine.data(), all.data(), kIdBytes);
  std::vector<std::string> ids;
  for (const auto& id : all) ids.emplace_back(id.data(), strnlen(id.data(), kIdBytes));
  return ids;
}

struct Outcome {
  bool check_failed = false;
  bool below_min_efficiency = false;
};

// Runs every op of every variant of one workload (a named one's variants, or a custom shape);
// returns its report (rows filled on every rank, printed and written by rank 0). A named variant
// the rank count cannot run is skipped with a note; a custom shape it cannot run is an error.
RunReport run_workload(Session& session, const std::string& name, const std::vector<Workload>& variants,
                       bool custom, const RunSettings& settings, cudaStream_t stream, L2Flusher& flusher,
                       RunReport report) {
  const int rank = session.rank();
  const int num_ranks = session.num_ranks();
  report.workload = name;
  for (const Workload& workload : variants) {
    try {
      validate(workload, num_ranks);
    } catch (const Error& e) {
      if (custom) throw;
      if (rank == 0) std::printf("# note: %s skipped: %s\n", name.c_str(), e.message().c_str());
      continue;
    }
    const int G = session.ranks_per_domain();
    if (G > 0 && workload.mode == Mode::kLowLatency) {
      if (rank == 0)
        std::printf(
            "# note: %s skipped: --ranks-per-domain runs the high-throughput workloads; the bench does "
            "not run low-latency workloads on multi-domain Buffers yet\n",
            name.c_str());
      continue;
    }
    DeviceInputs inputs = upload_inputs(make_rank_inputs(workload, num_ranks, rank, InputSet::kTimed),
                                        make_rank_inputs(workload, num_ranks, rank, InputSet::kCheck));
    std::vector<RankRouting> routings;  // every rank's, of the timed calls
    for (int r = 0; r < num_ranks; ++r) routings.push_back(make_routing(workload, num_ranks, r));
    const Traffic traffic = compute_traffic(workload, routings, rank);
    std::optional<MdRows> md_rows;
    if (G > 0) md_rows = count_md_rows(workload, routings, G, rank);
    std::optional<ExpectedHt> expected;  // NOTE: outlives the ops below, whose checks read it
    const auto expected_ht = [&]() -> const ExpectedHt& {
      if (!expected) expected = compute_expected_ht(workload, num_ranks, rank, InputSet::kCheck);
      return *expected;
    };
    BenchContext context{session, workload, inputs, traffic, md_rows, expected_ht};
    for (const OpFactory& factory : op_factories()) {
      std::vector<BenchOp> ops = factory(context);
      for (BenchOp& op : ops)
        if (auto row = run_op(session, workload, inputs, op, stream, flusher, settings))
          report.rows.push_back(*row);
    }
  }
  fill_nccl_comparison(report.rows);
  return report;
}

// What the lead prints of a multi-domain run before its rows.
void print_md_notes(int G, int num_ranks, bool correctness_only, bool shared_gpus) {
  std::printf(
      "# note: multi-domain Buffer: %d domains x %d ranks (--ranks-per-domain); low-latency rows are not "
      "run (the bench does not run low-latency workloads on multi-domain Buffers yet)\n",
      num_ranks / G, G);
  if (correctness_only)
    std::printf(
        "# note: ranks share GPUs: every row is %s (--shared-gpu-timing times them, not NVLink "
        "timing)\n",
        kCorrectnessOnlyNote);
  else if (shared_gpus)
    std::printf(
        "# note: ranks share GPUs and --shared-gpu-timing: rows are timed, not NVLink or NIC timing\n");
}

int run(const Options& options, const BenchEnv& env, int device, int G, int argc, const char* const* argv) {
  BENCH_CUDA(cudaSetDevice(device));
  std::unique_ptr<Bootstrap> bootstrap = make_bootstrap(env);
  const bool lead = bootstrap->rank() == 0;
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, device));
  const std::vector<std::string> gpu_of_rank = gpu_of_each_rank(*bootstrap, device);
  check_gpu_sharing(gpu_of_rank, options.shared_gpu_timing || G > 0);
  const bool shared_gpus = ranks_share_a_gpu(gpu_of_rank);
  // NOTE: ranks sharing a GPU run a multi-domain Buffer's kernels in turns: check them, time nothing.
  const bool correctness_only = G > 0 && shared_gpus && !options.shared_gpu_timing;
  if (lead && G > 0) print_md_notes(G, bootstrap->size(), correctness_only, shared_gpus);
  if (lead && shared_gpus && !correctness_only)
    std::printf("# note: ranks share GPUs (--shared-gpu-timing): every row is %s timing\n", kSharedGpuNote);
  if (lead && options.shared_gpu_timing && !shared_gpus)
    std::printf("# note: --shared-gpu-timing given, but every rank has a GPU of its own: usual timing\n");

  Session session(*bootstrap, device, options.sms, options.ce_chunks, shared_gpus, G, options.telemetry,
                  options.split_layout);
  RunSettings settings;
  settings.timing = correctness_only ? TimingOptions{0, 1} : TimingOptions{options.warmup, options.iters};
  settings.check = options.check;
  settings.correctness_only = correctness_only;
  settings.nic_gbps = options.nic_gbps;
  settings.preamble_hold_us = options.preamble_hold_us;
  if (lead && !correctness_only && (options.warmup < 10 || options.iters < 50))
    std::printf(
        "# note: %d warm-up / %d timed calls is below the docs/benchmark.md protocol (>= 10 / >= 50)\n",
        options.warmup, options.iters);

  // Ranks sharing a GPU have no NVLink between them to measure.
  const Ceiling ceiling =
      shared_gpus ? Ceiling{}
                  : measure_ceiling(*bootstrap, device, options.ceiling_mib * (std::size_t{1} << 20),
                                    settings.timing);
  if (lead && !ceiling.measured)
    std::printf("# note: NVLink ceiling skipped: %s\n",
                shared_gpus ? "ranks share GPUs" : "needs 2 or more ranks");
  settings.ceiling_gbps = ceiling.measured ? ceiling.all_pairs_gbps : 0.0;

  RunReport base;
  base.card = prop.name;
  base.num_gpus = bootstrap->size();
  base.commit = commit_id(env.commit);
  base.date = utc_date_today();
  base.command = join_command(argc, argv);
  base.ceiling_gbps = settings.ceiling_gbps;
  base.ceiling_one_way_gbps = ceiling.one_way_gbps;
  base.shared_gpus = shared_gpus;
  if (G > 0)
    base.multi_domain = MdRunInfo{.ranks_per_domain = G,
                                  .num_domains = bootstrap->size() / G,
                                  .nic_gbps = options.nic_gbps,
                                  .correctness_only = correctness_only};
  base.warmup = options.warmup;
  base.iters = options.iters;
  base.preamble_hold_us = options.preamble_hold_us;
  if (lead) std::printf("# NCCL %s\n", nccl_version_string());

  Stream stream;
  L2Flusher flusher;
  Outcome outcome;
  std::string csv = csv_header();
  const std::vector<std::string> names = run_names(options);
  const bool several = names.size() > 1;
  for (const std::string& name : names) {
    const bool custom = options.custom && name == options.custom->name;
    const RunReport report =
        run_workload(session, name, custom ? std::vector{*options.custom} : workloads_named(name), custom,
                     settings, stream.get(), flusher, base);
    for (const ResultRow& row : report.rows)
      outcome.check_failed |= row.check == "fail" || row.check == "error";
    if (options.min_efficiency) {
      if (!ceiling.measured) {
        if (lead) std::printf("# note: --min-efficiency not applied: no ceiling on one rank\n");
      } else {
        for (const ResultRow& row : rows_below_efficiency(report.rows, *options.min_efficiency)) {
          outcome.below_min_efficiency = true;
          if (lead)
            std::printf("# FAIL: %s %s %s sms %d tokens %lld: efficiency %.3f below %.3f\n", row.impl.c_str(),
                        row.op.c_str(), row.dtype.c_str(), row.num_sms, static_cast<long long>(row.tokens),
                        row.efficiency, *options.min_efficiency);
        }
      }
    }
    if (!lead) continue;
    std::printf("%s\n", format_table(report).c_str());
    if (report.multi_domain) std::printf("%s\n", format_md_table(report).c_str());
    std::printf("%s", format_run_telemetry(report).c_str());
    std::printf("%s", format_fastest(fastest_epcomm_rows(report.rows)).c_str());
    std::fflush(stdout);
    if (!options.json_path.empty())
      write_text_file(output_path_for(options.json_path, name, several), to_json(report));
    csv += to_csv_rows(report);
  }
  if (lead && !options.csv_path.empty()) write_text_file(options.csv_path, csv);
  if (outcome.check_failed) {
    if (lead) std::printf("# FAIL: a data check failed or an op threw (see the check column and stderr)\n");
    return kExitCheckFailed;
  }
  return outcome.below_min_efficiency ? kExitBelowMinEfficiency : kExitOk;
}

}  // namespace
}  // namespace epcomm::bench

int main(int argc, char** argv) {
  using namespace epcomm::bench;
  // NOTE: first, before CUDA or NCCL are touched.
  disable_nvlink_multicast();

  Options options;
  BenchEnv env;
  int ranks_per_domain = 0;
  try {
    options = parse_args(argc, argv);
    env = read_env();
    ranks_per_domain = resolve_ranks_per_domain(options, env);
  } catch (const epcomm::Error& e) {
    std::fprintf(stderr, "epcomm-bench: %s\n%s", e.message().c_str(), usage().c_str());
    return kExitUsage;
  }
  if (options.help) {
    std::printf("%s", usage().c_str());
    return kExitOk;
  }

#ifndef EPCOMM_BENCH_NVSHMEM
  if (ranks_per_domain > 0) {
    std::fprintf(stderr,
                 "epcomm-bench: --ranks-per-domain %d needs a multi-domain Buffer, which needs epcomm-bench "
                 "built with -DEPCOMM_WITH_NVSHMEM=ON\n",
                 ranks_per_domain);
    return kExitUsage;
  }
#endif
  // NOTE: "skipped" only when there is no GPU; any other CUDA error fails (bench/cli.hpp).
  const StartDecision start =
      decide_start(epcomm::probe_gpu_presence(), env, options.shared_gpu_timing || ranks_per_domain > 0);
  if (!start.run) {
    if (start.failure)
      std::fprintf(stderr, "epcomm-bench: rank %d: %s\n", env.rank, start.message.c_str());
    else if (env.rank == 0)
      std::printf("epcomm-bench: %s\n", start.message.c_str());
    return start.exit_code;
  }

  try {
    return run(options, env, start.device, ranks_per_domain, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epcomm-bench: rank %d: %s\n", env.rank, e.what());
    return kExitError;
  }
}
