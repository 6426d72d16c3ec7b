// How a low-latency Buffer reaches its peers, as the host sees it: the CUDA IPC kernels of the main
// library, or the NVSHMEM transport (BufferOptions::ll_transport = LlTransport::kNvshmem).
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

struct LlNvshmemHooks {
  // Collective over `bootstrap` (every rank, the same `bytes`): initialises NVSHMEM on the current
  // device and returns `bytes` of zeroed symmetric memory in *workspace, zeroed on every rank
  // before the call returns anywhere. The returned object owns both; destroying it frees them and
  // finalises NVSHMEM, collectively.
  std::shared_ptr<void> (*open_workspace)(Bootstrap& bootstrap, std::size_t bytes, void** workspace);
  // NVSHMEM is initialised in this process now (by a Buffer or an NvshmemTransport): it keeps one
  // state per process, so a second owner would be refused.
  bool (*in_use)();
  LlDispatchLauncher launch_dispatch;
  LlCombineLauncher launch_combine;
};

// Null unless epcomm_nvshmem is linked into the program (or a test registered its own).
const LlNvshmemHooks* ll_nvshmem_hooks() noexcept;
// Registers `hooks` (a static object; null unregisters). Called while the program starts.
void set_ll_nvshmem_hooks(const LlNvshmemHooks* hooks) noexcept;

}  // namespace epcomm
