// Low-latency dispatch within one NVLink domain, peers reached through CUDA IPC: the IpcPeers
// instantiation of the kernel family in ll_dispatch.cuh.
#include "low_latency/ll_dispatch.cuh"
#include "transport/ipc_ll_peers.cuh"

namespace epcomm {

void launch_ll_dispatch(const LlDispatchArgs& args, int num_blocks, void* stream) {
  launch_ll_dispatch_with<IpcPeers>(args, num_blocks, stream);
}

}  // namespace epcomm
