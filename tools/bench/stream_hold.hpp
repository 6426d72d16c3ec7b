// Holding a stream busy on the device for a while, so that the host can queue the work that
// follows before the GPU reaches it: events around that work then time the device alone, not the
// host's launch latency (the preamble pass, docs/benchmark.md `preamble_us`). In a model's step the
// stream is busy with the layer's compute the same way.
#pragma once

#include <cuda_runtime_api.h>

namespace epcomm::bench {

// Queues on `stream` one single-thread kernel that spins for about `us` microseconds of device
// time (%globaltimer). Nothing for us <= 0.
void hold_stream(cudaStream_t stream, double us);

}  // namespace epcomm::bench
