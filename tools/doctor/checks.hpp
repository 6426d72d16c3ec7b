// epcomm-doctor's decisions: pure functions from what was seen on the machine (versions,
// capabilities, the environment, measured numbers, what a child process printed) to one verdict
// per check. No CUDA call happens here, so tests/cpu/test_doctor_checks.cpp feeds them every
// failure kind without a GPU; the probes (probes.hpp) gather the facts on the machine.
//
// Every verdict is printed as one line, "<status>  <check>: <what was seen>", status ok, FAIL or
// skip; a FAIL says what is wrong and, where there is one, what to do.
#pragma once

#include <cuda_runtime_api.h>  // cudaError_t (a header: no CUDA library is needed to use this file)

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bootstrap/launcher.hpp"
#include "epcomm/gpu_presence.hpp"

namespace epcomm::doctor {

enum class Status { kOk, kFail, kSkip };
const char* to_string(Status status) noexcept;  // "ok", "FAIL", "skip"

struct CheckResult {
  Status status = Status::kOk;
  std::string check;  // a short name: "cuda", "gpus", "peers", ...
  std::string seen;   // what was seen, in words; a FAIL also says why that is wrong
};
// "ok    cuda: driver 13.0, runtime 13.0, 2 GPUs" (the status padded to one width).
std::string format_line(const CheckResult& result);

// Exit codes of epcomm-doctor (README "epcomm-doctor").
inline constexpr int kExitOk = 0;      // every check ok or skipped
inline constexpr int kExitFailed = 1;  // a check failed (its FAIL line says why)
inline constexpr int kExitUsage = 2;   // bad command line
inline constexpr int kExitNoGpu = 77;  // no GPU here (ctest's skip code): nothing GPU-side was checked
// kExitFailed when any check failed; else kExitNoGpu when there is no GPU; else kExitOk. A missing
// GPU under EPCOMM_REQUIRE_GPU=1 is already a FAIL line (decide_cuda), hence kExitFailed.
int exit_code(const std::vector<CheckResult>& results, bool no_gpu);

// ---- CUDA driver and runtime ---------------------------------------------------------------------

// Whether there are GPUs (epcomm::probe_gpu_presence), and the versions.
struct CudaFacts : GpuPresence {
  int driver_version = 0;    // cudaDriverGetVersion: 1000 * major + 10 * minor; 0: none
  int runtime_version = 0;   // cudaRuntimeGetVersion, likewise
  bool require_gpu = false;  // EPCOMM_REQUIRE_GPU=1
};
// "13.0" from 13000, "12.8" from 12080; "none" from 0.
std::string cuda_version_text(int version);
// No GPU: GpuPresence::no_gpu, the rule the GPU tests' gate and epcomm-bench apply too.
bool no_gpu(const CudaFacts& facts);
// skip without a GPU (FAIL under require_gpu), FAIL for a driver older than the runtime or any
// other error, ok with the versions and the number of GPUs.
CheckResult decide_cuda(const CudaFacts& facts);

// ---- GPUs and compute capability ------------------------------------------------------------------

struct GpuFacts {
  int index = 0;  // CUDA device index
  std::string name;
  int major = 0, minor = 0;  // compute capability
  std::int64_t total_bytes = 0;
  int num_sms = 0;
  int compute_mode = 0;  // cudaComputeMode
};
// Whether device code built for the CMake CUDA architecture `arch` runs on compute capability
// major.minor: "90a" (arch-specific) exactly 9.0; "100f" (family) 10.x from 10.0; "90-real" the
// same major from 9.0 (binary code); "90" and "90-virtual" any from 9.0 (PTX compiled at load).
bool arch_runs_on(std::string_view arch, int major, int minor);
// built_archs: EPCOMM_CUDA_ARCHS as CMake had it ("90a", "90a;100a"). FAIL names each GPU that
// cannot run the device code, and any GPU whose compute mode forbids contexts.
CheckResult decide_gpus(const std::vector<GpuFacts>& gpus, std::string_view built_archs);

// ---- peers: access, NVLink topology, measured bandwidth ------------------------------------------

inline constexpr double kDefaultMinPeerGBps = 100;  // below: PCIe-class (NVLink 4: ~300-400 GB/s one way)
inline constexpr double kSlowPairFraction = 0.5;    // a pair under half the median is a degraded link

struct PeerPair {
  int src = 0, dst = 0;         // CUDA device indices, src != dst
  bool can_access = false;      // cudaDeviceCanAccessPeer(src -> dst)
  bool native_atomics = false;  // cudaDevP2PAttrNativeAtomicSupported
  std::string link;             // nvidia-smi topo -m ("NV18", "PIX", "SYS"); empty: unknown
  double gbps = -1;             // measured copy bandwidth src -> dst, 1e9 bytes/s; < 0: not measured
  std::string error;            // why the copy could not be measured
};
struct PeerFacts {
  int num_gpus = 0;
  std::vector<PeerPair> pairs;  // every ordered pair
  std::string topology_note;    // why link types are unknown ("nvidia-smi not found"); empty when known
  double min_gbps = kDefaultMinPeerGBps;
  std::int64_t copy_bytes = 0;  // bytes of each timed copy
};
CheckResult decide_peers(const PeerFacts& facts);

// The GPU-by-GPU matrix of `nvidia-smi topo -m`: cell [i][j] for nvidia-smi's GPU i and j ("X" on
// the diagonal). Empty when the text holds no such matrix.
std::vector<std::vector<std::string>> parse_topo_matrix(std::string_view text);
// A PCI bus id in one spelling ("00000000:1B:00.0" from nvidia-smi, "0000:1b:00.0" from CUDA):
// "0:1b:00.0" (domain as a number, the rest lower case). Empty for text that is not one.
std::string normalize_bus_id(std::string_view bus_id);

// ---- CUDA IPC between processes -------------------------------------------------------------------

// Bytes as lower-case hex, and back (false for text of the wrong length or with a non-hex digit).
std::string to_hex(const void* data, std::size_t bytes);
bool from_hex(std::string_view text, void* out, std::size_t bytes);

struct IpcFacts {
  int num_gpus = 0;
  std::string parent_error;        // the parent's own failure (allocation, handle, read-back)
  launcher::LocalRun child;        // the second process (the doctor run with --ipc-child)
  std::vector<bool> written_back;  // [gpu]: the parent saw what the child wrote through the mapping
};
CheckResult decide_ipc(const IpcFacts& facts);

// ---- NVSHMEM ---------------------------------------------------------------------------------------

struct NvshmemFacts {
  std::string home;                 // where it was found; empty: nowhere
  std::string found_by;             // "NVSHMEM_HOME", "python3 nvidia.nvshmem", "the build's NVSHMEM_HOME"
  std::vector<std::string> looked;  // each place looked at and what was there
  bool host_library = false;        // lib/libnvshmem_host.so.3
  bool device_library = false;      // lib/libnvshmem_device.a (needed to build, not to run)
  std::string version;              // from include/non_abi/nvshmem_version.h; empty: unreadable
  std::string load_error;           // dlopen of the host library; empty: it loads
  bool built_with_nvshmem = false;  // this build has the NVSHMEM transport (EPCOMM_WITH_NVSHMEM)
};
// "3.4.5" from the NVSHMEM_VENDOR_{MAJOR,MINOR,PATCH}_VERSION defines; empty when absent.
std::string parse_nvshmem_version(std::string_view header_text);
// skip when not found (it is optional), FAIL when found but unusable (no host library, not 3.x,
// does not load), ok with the version and the place.
CheckResult decide_nvshmem(const NvshmemFacts& facts);

// ---- the launch environment ------------------------------------------------------------------------

using Environment = std::map<std::string, std::string, std::less<>>;  // name -> value
// From "NAME=VALUE" strings (environ); entries without '=' are ignored.
Environment environment_of(const std::vector<std::string>& assignments);
// Every EPCOMM_* and torchrun variable epcomm reads is well-formed (the environment registry's
// types and ranges); the rendezvous variables, when set, are complete and consistent (RANK <
// WORLD_SIZE, LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, domains of equal size, no more local
// ranks than GPUs when num_gpus >= 0); NVLink multicast is not switched on (NCCL_NVLS_ENABLE=0,
// NVSHMEM_DISABLE_NVLS=1, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 advised when unset). EPCOMM_* names
// epcomm does not read are named in the line (a typo?) without failing.
CheckResult decide_launch_env(const Environment& env, int num_gpus);

// ---- the end-to-end runs (worker processes) ---------------------------------------------------------

// A worker reports each phase ("ht", "ll", "ipc") as one line: "@doctor <phase> <ok|FAIL|skip> <detail>".
std::string worker_line(std::string_view phase, Status status, std::string_view detail);
// Every rank of `run` must have printed an ok line for `phase` (its last line for it counts); FAIL
// names the first rank that printed FAIL, else the first that printed nothing (with how the run
// ended: launcher::failure_summary, and the rank's last output line); skip when a rank skipped it. For
// the run's `last_phase`, ok lines followed by a failed exit (a crash on the way out) are a FAIL
// too. `check` names the verdict.
CheckResult decide_worker_phase(const launcher::LocalRun& run, std::string_view phase, std::string_view check,
                                bool last_phase);

}  // namespace epcomm::doctor
