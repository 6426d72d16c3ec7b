// Low-latency mode over NVSHMEM (epcomm_nvshmem only): the launchers of the NvshmemPeers and
// HybridPeers kernels and the symmetric workspace of a Buffer on those paths (LlPath). The main
// library reaches them through transport/ll_transport.hpp, where nvshmem_ll_backend.cpp registers
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "epcomm/bootstrap.hpp"
#include "low_latency/ll_args.hpp"

namespace epcomm {

void launch_ll_dispatch_nvshmem(const LlDispatchArgs& args, int num_blocks, void* stream);
void launch_ll_combine_nvshmem(const LlCombineArgs& args, int num_blocks, void* stream);
void launch_ll_dispatch_hybrid(const LlDispatchArgs& args, int num_blocks, void* stream);
void launch_ll_combine_hybrid(const LlCombineArgs& args, int num_blocks, void* stream);

// The symmetric heap size (NVSHMEM_SYMMETRIC_SIZE) to ask for a workspace of `workspace_bytes`:
// the workspace plus room for NVSHMEM's own symmetric objects, never below NVSHMEM's default.
std::uint64_t nvshmem_heap_bytes_for(std::size_t workspace_bytes);

// LlNvshmemHooks::peer_pointer (transport/ll_transport.hpp): nvshmem_ptr.
void* nvshmem_ll_peer_pointer(void* workspace, int pe);

// LlNvshmemHooks::open_workspace (transport/ll_transport.hpp).
std::shared_ptr<void> open_nvshmem_ll_workspace(Bootstrap& bootstrap, std::size_t bytes, void** workspace);

}  // namespace epcomm
