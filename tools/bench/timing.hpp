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
  // A second loop of `iters` calls back to back with no event between them, max over ranks:
  double batch_us = 0;  // the time between two events around the loop, per call: the larger of the
                        // GPU's time per call and the host's (the steady state of back-to-back calls)
  double host_us = 0;   // the host's wall time to issue one call: what a caller's thread spends
};

// Collective. Runs `call` warmup times, synchronizes, meets the other ranks at a barrier, flushes
// L2, then times `iters` calls back to back, each between two events on `stream`; then, after another
// flush, `iters` calls with events only around the whole loop (batch_us, host_us).
Timing time_calls(Bootstrap& bootstrap, const std::function<void(cudaStream_t)>& call, cudaStream_t stream,
                  const TimingOptions& options, L2Flusher& flusher);

}  // namespace epcomm::bench
