// epcomm-doctor's probes: the thin parts that ask the machine (CUDA runtime calls, a second
// process, the file system) and return plain facts for the decisions of checks.hpp. GPU-side
// probes run only where decide_cuda found GPUs.
#pragma once

#include <string>
#include <vector>

#include "bootstrap/launcher.hpp"
#include "doctor/checks.hpp"

namespace epcomm::doctor {

// What one run of the doctor needs to know about itself.
struct Self {
  std::string executable;                // /proc/self/exe: re-executed for the IPC child and the workers
  std::vector<std::string> environment;  // environ, "NAME=VALUE"
};

// ---- probe_cuda.cpp --------------------------------------------------------------------------------

// Versions, the device count, and whether libcuda.so.1 loads (never fails: errors are facts).
CudaFacts probe_cuda(bool require_gpu);
std::vector<GpuFacts> probe_gpus(int num_gpus);

inline constexpr std::int64_t kPeerCopyBytes = std::int64_t{64} << 20;  // one timed peer copy
inline constexpr int kPeerCopiesTimed = 4;                              // after one untimed warm-up
// Access and atomics of every ordered pair (cudaDeviceCanAccessPeer, cudaDeviceGetP2PAttribute),
// link types from `nvidia-smi topo -m` matched to CUDA's devices by PCI bus id, and the one-way
// bandwidth of kPeerCopiesTimed cudaMemcpyPeerAsync of kPeerCopyBytes, timed with events.
PeerFacts probe_peers(int num_gpus, double min_gbps);

// ---- probe_ipc.cpp ---------------------------------------------------------------------------------

// A 1 MiB buffer on each GPU, filled here; a second process (the doctor with --ipc-child and the
// handles) maps each one from the next GPU, checks the fill and writes the buffer's second half;
// this process then reads it back.
IpcFacts probe_ipc(int num_gpus, const Self& self);
// The second process: args are the handles, hex, one per GPU. Prints one worker_line("ipc", ...).
int ipc_child_main(const std::vector<std::string>& handles_hex);

// ---- probe_nvshmem.cpp -----------------------------------------------------------------------------

// Looks where CMake looks: NVSHMEM_HOME, else the Python package nvidia.nvshmem (python3), else
// the NVSHMEM_HOME this build was configured with; reads the version header and dlopens
// libnvshmem_host.so.3 (never links it).
NvshmemFacts probe_nvshmem(const Environment& env);

// ---- worker.cpp ------------------------------------------------------------------------------------

inline constexpr double kWorkerTimeoutSeconds = 180;  // the whole end-to-end run, every rank
// One worker per GPU (the doctor with --worker, through launcher::run_local: epcomm-run's
// environment), each running the tiny case's high-throughput and low-latency phases.
launcher::LocalRun run_workers(int num_gpus, const Self& self);
// One worker: prints worker_line("ht", ...) and worker_line("ll", ...); 0 when both passed.
int worker_main();

}  // namespace epcomm::doctor
