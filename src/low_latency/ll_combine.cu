// Low-latency combine within one NVLink domain, peers reached through CUDA IPC: the IpcPeers
// instantiation of the kernel family in ll_combine.cuh.
#include "low_latency/ll_combine.cuh"
#include "transport/ipc_ll_peers.cuh"

namespace epcomm {

void launch_ll_combine(const LlCombineArgs& args, int num_blocks, void* stream) {
  launch_ll_combine_with<IpcPeers>(args, num_blocks, stream);
}

}  // namespace epcomm
