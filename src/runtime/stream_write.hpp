// A 64-bit store queued on a stream (the driver's stream memory operation): it happens once the
// stream's earlier work is complete and, like a system-scope fence followed by the store, after
// that work's writes (copies into a peer included) are visible. No SM is involved, so a kernel
// spinning on the value elsewhere cannot starve it of one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace epcomm {

// `addr` is device memory this device can write (a peer's mapped region included). Throws
// epcomm::Error (kCuda) when the driver lacks stream memory operations or refuses the write.
void stream_write_u64(cudaStream_t stream, std::uint64_t* addr, std::uint64_t value);

}  // namespace epcomm
