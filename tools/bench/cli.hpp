// epcomm-bench's command line, the environment it reads (all of it, in one place) and the decision
// to run, skip or fail once CUDA has been asked for devices.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "bench/workload.hpp"
#include "epcomm/gpu_presence.hpp"

namespace epcomm::bench {

// Bounds of the flags (stated by usage() and by the error for a value outside them).
inline constexpr int kMaxWarmup = 100000;
inline constexpr int kMaxIters = 100000;  // one pair of CUDA events per timed call
inline constexpr int kMaxCeilingMib = 16384;
inline constexpr int kMaxRanksPerDomain = 72;    // BufferOptions::ranks_per_domain
inline constexpr double kDefaultNicGbps = 50.0;  // a 400 Gb/s NIC per GPU, line rate
inline constexpr double kMaxNicGbps = 10000.0;
inline constexpr int kDefaultPreambleHoldUs = 200;  // bench/stream_hold.hpp
inline constexpr int kMaxPreambleHoldUs = 100000;

struct Options {
  std::vector<std::string> workloads = {"ht-dsv3"};  // resolved: "all" expands to every name; empty
                                                     // when only a custom workload runs
  std::optional<Workload> custom;        // --tokens --hidden --topk --experts [--routing] [--mode]
  int warmup = 10;                       // docs/benchmark.md: >= 10
  int iters = 50;                        // docs/benchmark.md: >= 50
  std::string json_path;                 // empty: no JSON
  std::string csv_path;                  // empty: no CSV
  bool check = true;                     // compare every element with the CPU reference
  std::vector<int> sms = {24, 48, 64};   // SM budgets for epcomm's own ops
  std::vector<int> ce_chunks = {4};      // chunk counts of the copy-engine dispatch rows
  std::optional<double> min_efficiency;  // gate on epcomm ops' wire efficiency, in (0, 1]
  std::size_t ceiling_mib = 256;         // MiB per peer copy of the NVLink ceiling
  bool shared_gpu_timing = false;        // time ranks that share a GPU (rows say so; not NVLink)
  bool telemetry = false;                // --telemetry: Buffers count per-peer telemetry; rows report it
  int ranks_per_domain = 0;              // --ranks-per-domain G: a multi-domain Buffer; 0: one domain
  double nic_gbps = kDefaultNicGbps;     // --nic-gbps: the NIC rate of a multi-domain row's floor
  int preamble_hold_us = kDefaultPreambleHoldUs;  // --preamble-hold-us: see RunSettings
  bool split_layout = false;  // --split-layout: a whole dispatch calls get_dispatch_layout first
  bool help = false;
};

// The names of the workloads to run, in order: the named ones, then the custom one.
std::vector<std::string> run_names(const Options& options);

// Accepts "--flag value" and "--flag=value", each flag at most once. Throws epcomm::Error (invalid
// argument) naming the flag and the value it could not use, before anything touches a GPU: also
// for a --json or --csv path whose folder does not exist.
Options parse_args(int argc, const char* const* argv);
std::string usage();

// Exit codes of main.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitCheckFailed = 3;
inline constexpr int kExitBelowMinEfficiency = 4;

// Set before anything touches CUDA or NCCL: NVLink multicast (NVLS) is never used on the lent
// machines (NCCL_NVLS_ENABLE=0, NVSHMEM_DISABLE_NVLS=1, TORCH_SYMM_MEM_DISABLE_MULTICAST=1).
void disable_nvlink_multicast();

struct BenchEnv {
  bool launched = false;     // WORLD_SIZE is set (epcomm-run or torchrun); otherwise one rank
  int rank = 0;              // RANK
  int world_size = 1;        // WORLD_SIZE
  int local_rank = 0;        // LOCAL_RANK (else RANK): the GPU this process uses
  int local_world_size = 1;  // LOCAL_WORLD_SIZE (else WORLD_SIZE): the GPUs this host must have
  std::string commit;        // EPCOMM_COMMIT (overrides the commit seen at configure time)
  bool require_gpu = false;  // EPCOMM_REQUIRE_GPU (1|0, true|false, yes|no, on|off): a skip fails
  int ranks_per_domain = 0;  // EPCOMM_RANKS_PER_DOMAIN (0 or unset: none), which the Buffer obeys
};

// Throws epcomm::Error (invalid argument) naming a malformed variable. MASTER_ADDR/MASTER_PORT are
// read by tcp_bootstrap_options_from_env().
BenchEnv read_env();

// G of a multi-domain run, 0 for a run in one domain: --ranks-per-domain, or
// EPCOMM_RANKS_PER_DOMAIN (which the Buffer obeys, so the benchmark does too). Throws
// epcomm::Error (invalid argument) naming the flag when the two disagree, when G does not divide
// the ranks of the run (WORLD_SIZE) or of this host (LOCAL_WORLD_SIZE), for a low-latency custom
// shape (the bench does not run low-latency on multi-domain Buffers yet), or for an SM budget below 2.
int resolve_ranks_per_domain(const Options& options, const BenchEnv& env);

struct StartDecision {
  bool run = false;
  int device = 0;           // when run: the CUDA device of this rank
  bool failure = false;     // when !run: a failure (stderr, every rank) or a skip (stdout, rank 0)
  int exit_code = kExitOk;  // when !run
  std::string message;      // when !run
};

// Run when this rank has its GPU (device LOCAL_RANK), or, with `may_share` (--shared-gpu-timing, or
// a multi-domain run, whose rows are then correctness only), when there is any GPU (device
// LOCAL_RANK mod count: ranks share GPUs). Skip (exit 0, "skipped: ...") only when
// there is no GPU (GpuPresence::no_gpu) or, without `shared_gpu_timing`, fewer GPUs than local
// ranks; EPCOMM_REQUIRE_GPU turns a skip into a failure. Any other CUDA error (a driver older than
// the runtime, ...) is a failure naming the error.
StartDecision decide_start(const GpuPresence& gpus, const BenchEnv& env, bool may_share);

// Whether two ranks run on one GPU, from every rank's GPU identity (host and PCI bus id), by rank.
bool ranks_share_a_gpu(const std::vector<std::string>& gpu_of_rank);
// Refuses (epcomm::Error naming the ranks and the flag) a run whose ranks share a GPU unless
// `may_share` (--shared-gpu-timing asked to time them, or a multi-domain run checks them only):
// their times are not NVLink times.
void check_gpu_sharing(const std::vector<std::string>& gpu_of_rank, bool may_share);

}  // namespace epcomm::bench
