// Low-latency combine within one NVLink domain, peers reached through CUDA IPC: the IpcPeers
// instantiation of the kernel family in ll_combine.cuh, and the pulled form (ll_combine_pull.cuh)
// for a zero-copy y.
#include "low_latency/ll_combine.cuh"
#include "low_latency/ll_combine_pull.cuh"
#include "transport/ipc_ll_peers.cuh"

namespace epcomm {

void launch_ll_combine(const LlCombineArgs& args, int num_blocks, void* stream) {
  if (args.pull)
    launch_kernel(Launch::kPdl, ll_combine_pull_kernel, num_blocks, kLlThreads, 0,
                  static_cast<cudaStream_t>(stream), args);
  else
    launch_ll_combine_with<IpcPeers>(args, num_blocks, stream);
}

}  // namespace epcomm
