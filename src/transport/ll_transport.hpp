// How a low-latency Buffer reaches its peers, as the host sees it (LlPath): the CUDA IPC kernels of
// the main library (one NVLink domain), the NVSHMEM transport for every peer
// (BufferOptions::ll_transport = LlTransport::kNvshmem), or, when the ranks span several NVLink
// domains, the hybrid kernels of the NVSHMEM library (stores within the domain, NVSHMEM beyond).
//
// The main library never links NVSHMEM. The NVSHMEM kernels and the symmetric workspace live in
// epcomm_nvshmem (built with EPCOMM_WITH_NVSHMEM; relocatable device code that the final program
// device-links with libnvshmem_device.a), which registers its hooks here when it is linked in
// (its link interface forces the registering object into the program). A program without it has
// no hooks, and asking for the NVSHMEM transport is refused before any collective step.
#pragma once

#include <cstddef>
#include <memory>

#include "epcomm/bootstrap.hpp"
#include "low_latency/ll_args.hpp"

namespace epcomm {

// The kernels and workspace of a low-latency Buffer (checks::select_ll_path decides).
enum class LlPath : int {
  kIpc,      // one NVLink domain: stores into the peers' NVLink regions (CUDA IPC)
  kNvshmem,  // LlTransport::kNvshmem: every peer by NVSHMEM puts and signals (NvshmemPeers)
  kHybrid,   // several domains: domain peers by stores through nvshmem_ptr, the others by NVSHMEM
};
const char* to_string(LlPath path) noexcept;

struct LlNvshmemHooks {
  // Collective over `bootstrap` (every rank, the same `bytes`): initialises NVSHMEM on the current
  // device and returns `bytes` of zeroed symmetric memory in *workspace, zeroed on every rank
  // before the call returns anywhere. The returned object owns both; destroying it frees them and
  // finalises NVSHMEM, collectively.
  std::shared_ptr<void> (*open_workspace)(Bootstrap& bootstrap, std::size_t bytes, void** workspace);
  // NVSHMEM is initialised in this process now (by a Buffer or an NvshmemTransport): it keeps one
  // state per process, so a second owner would be refused.
  bool (*in_use)();
  LlDispatchLauncher launch_dispatch;  // NvshmemPeers
  LlCombineLauncher launch_combine;
  LlDispatchLauncher launch_dispatch_hybrid;  // HybridPeers (transport/hybrid_ll_peers.cuh)
  LlCombineLauncher launch_combine_hybrid;
  // The address through which this process's kernels load and store PE `pe`'s copy of the
  // symmetric `workspace` (nvshmem_ptr), or null when `pe` is not reachable that way.
  void* (*peer_pointer)(void* workspace, int pe);
};

// Teardown with a peer gone: NVSHMEM's (nvshmem_free, nvshmem_finalize) is collective and would wait
// for that peer forever, so the owner `open_workspace` returned is set aside, never destroyed
// (logged), and `owner` is left empty; the process cannot make another NVSHMEM Buffer. Nothing to
// do when `owner` is empty (a Buffer on CUDA IPC only).
void abandon_collective_teardown(std::shared_ptr<void>& owner) noexcept;

// Null unless epcomm_nvshmem is linked into the program (or a test registered its own).
const LlNvshmemHooks* ll_nvshmem_hooks() noexcept;
// Registers `hooks` (a static object; null unregisters). Called while the program starts.
void set_ll_nvshmem_hooks(const LlNvshmemHooks* hooks) noexcept;

}  // namespace epcomm
