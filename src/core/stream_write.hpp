// The driver's stream memory operations on 64-bit words. A store queued on a stream happens once
// the stream's earlier work is complete and, like a system-scope fence followed by the store, after
// that work's writes (copies into a peer included) are visible. A wait holds the stream's later work
// until a word reaches a value (a kernel on another stream may write it while it runs). No SM is
// involved in either, so a kernel spinning elsewhere cannot starve them of one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace epcomm {

// `addr` is device memory this device can write (a peer's mapped region included). Throws
// epcomm::Error (kCuda) when the driver lacks stream memory operations or refuses the write.
void stream_write_u64(cudaStream_t stream, std::uint64_t* addr, std::uint64_t value);

// Holds `stream`'s later work until *addr >= value (the driver compares the signed difference, so a
// counter may wrap). `addr` is device memory of this device. NOTE: no timeout: only for words that
// work already queued is sure to write.
void stream_wait_at_least_u64(cudaStream_t stream, const std::uint64_t* addr, std::uint64_t value);

}  // namespace epcomm
