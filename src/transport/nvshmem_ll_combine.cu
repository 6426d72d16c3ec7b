// Low-latency combine over NVSHMEM: the NvshmemPeers instantiation of the kernel family in
// low_latency/ll_combine.cuh (every peer reached through NVSHMEM) and the HybridPeers one (peers of
// this rank's NVLink domain by stores, the others through NVSHMEM; transport/hybrid_ll_peers.cuh).
// Relocatable device code in epcomm_nvshmem, device-linked with libnvshmem_device.a by whatever
// links that library.
//
// Launched as the IPC kernel is (launch_kernel, with PDL: core/pdl.hpp) on the caller's stream, so
// it is capturable in a CUDA graph: it uses only NVSHMEM puts, signals and quiet, never NVSHMEM
// collectives or waits (what nvshmemx_collective_launch exists for). Its own waits need every
// block resident at once, which the grid size guarantees as on the IPC path (ll_args.hpp).
#include "low_latency/ll_combine.cuh"
#include "transport/hybrid_ll_peers.cuh"
#include "transport/nvshmem_ll.hpp"
#include "transport/nvshmem_ll_peers.cuh"

namespace epcomm {

void launch_ll_combine_nvshmem(const LlCombineArgs& args, int num_blocks, void* stream) {
  launch_ll_combine_with<NvshmemPeers>(args, num_blocks, stream);
}

void launch_ll_combine_hybrid(const LlCombineArgs& args, int num_blocks, void* stream) {
  launch_ll_combine_with<HybridPeers>(args, num_blocks, stream);
}

}  // namespace epcomm
