#include "bench/timing.hpp"

#include <chrono>
#include <vector>

#include "bench/cuda.hpp"
#include "bench/stats.hpp"

namespace epcomm::bench {

void L2Flusher::flush(cudaStream_t stream) {
  BENCH_CUDA(cudaMemsetAsync(buffer_.get(), 0, buffer_.bytes(), stream));
}

Timing time_calls(Bootstrap& bootstrap, const std::function<void(cudaStream_t)>& call, cudaStream_t stream,
                  const TimingOptions& options, L2Flusher& flusher) {
  BENCH_CHECK_ARG(options.iters >= 1, "iters: expected >= 1, given ", options.iters);
  for (int i = 0; i < options.warmup; ++i) call(stream);
  BENCH_CUDA(cudaStreamSynchronize(stream));
  bootstrap.barrier();

  std::vector<Event> starts;
  std::vector<Event> stops;
  starts.reserve(options.iters);
  stops.reserve(options.iters);
  for (int i = 0; i < options.iters; ++i) {
    starts.emplace_back(true);
    stops.emplace_back(true);
  }
  flusher.flush(stream);
  for (int i = 0; i < options.iters; ++i) {
    starts[i].record(stream);
    call(stream);
    stops[i].record(stream);
  }
  BENCH_CUDA(cudaStreamSynchronize(stream));

  std::vector<double> us(options.iters);
  for (int i = 0; i < options.iters; ++i) {
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, starts[i].get(), stops[i].get()));
    us[i] = static_cast<double>(ms) * 1e3;
  }
  Timing t;
  t.median_us = median(std::move(us));
  t.max_us = max_over_ranks(bootstrap, t.median_us);

  Event first(true), last(true);
  flusher.flush(stream);
  first.record(stream);
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < options.iters; ++i) call(stream);
  const std::chrono::duration<double, std::micro> issued = std::chrono::steady_clock::now() - begin;
  last.record(stream);
  BENCH_CUDA(cudaStreamSynchronize(stream));
  float batch_ms = 0;
  BENCH_CUDA(cudaEventElapsedTime(&batch_ms, first.get(), last.get()));
  t.batch_us = max_over_ranks(bootstrap, static_cast<double>(batch_ms) * 1e3 / options.iters);
  t.host_us = max_over_ranks(bootstrap, issued.count() / options.iters);
  return t;
}

}  // namespace epcomm::bench
