// Timing one call the way docs/benchmark.md asks: warm-up, L2 flush, CUDA events around each timed call,
// median per rank, max over ranks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

#include "bench/cuda.hpp"
#include "epcomm/bootstrap.hpp"

namespace epcomm::bench {

struct TimingOptions {
  int warmup = 10;  // untimed calls first
  int iters = 50;   // timed calls
};

// Evicts the L2 cache by writing a dedicated buffer much larger than it (H100/H200: 50 MiB of L2).
class L2Flusher {
 public:
  static constexpr std::size_t kBytes = std::size_t{256} << 20;  // docs/benchmark.md: write 256 MB
  L2Flusher() : buffer_(kBytes) {}
  void flush(cudaStream_t stream);

 private:
  DeviceBuffer buffer_;
};

struct Timing {
  double median_us = 0;  // this rank's median
  double max_us = 0;     // max over ranks of the medians (what the report uses)
  // The host's time to issue one timed call with its two event records (the timed loop's wall time
  // over its calls, nothing synchronised inside it), max over ranks: what a caller's thread spends.
  double host_us = 0;
};

// Collective. Runs `call` warmup times, synchronizes, meets the other ranks at a barrier, flushes
// L2, then times `iters` calls back to back, each between two events on `stream`.
Timing time_calls(Bootstrap& bootstrap, const std::function<void(cudaStream_t)>& call, cudaStream_t stream,
                  const TimingOptions& options, L2Flusher& flusher);

}  // namespace epcomm::bench
