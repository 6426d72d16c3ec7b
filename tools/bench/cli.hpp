// epcomm-bench's command line and the environment it reads (all of it, in one place).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace epcomm::bench {

struct Options {
  std::vector<std::string> workloads = {"ht-dsv3"};  // resolved: "all" expands to every name
  int warmup = 10;                                   // BENCH.md: >= 10
  int iters = 50;                                    // BENCH.md: >= 50
  std::string json_path;                             // empty: no JSON
  std::string csv_path;                              // empty: no CSV
  bool check = true;                                 // compare every element with the CPU reference
  std::vector<int> sms = {24, 48, 64};               // SM budgets for epcomm's own ops
  std::vector<int> ce_chunks = {4};                  // chunk counts of the copy-engine dispatch rows
  std::optional<double> min_efficiency;              // gate on epcomm ops' wire efficiency
  std::size_t ceiling_mib = 256;                     // bytes per peer of the ceiling's copies, MiB
  bool help = false;
};

// Accepts "--flag value" and "--flag=value". Throws epcomm::Error (invalid argument) naming the
// flag and the value it could not use.
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
};

// Throws epcomm::Error (invalid argument) naming a malformed variable. MASTER_ADDR/MASTER_PORT are
// read by tcp_bootstrap_options_from_env().
BenchEnv read_env();

}  // namespace epcomm::bench
