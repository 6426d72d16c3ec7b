#include "bench/ll_trace.hpp"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "bench/ll_trace_stats.hpp"
#include "low_latency/ll_args.hpp"
#include "core/cuda_check.hpp"
#include "buffer/buffer_impl.hpp"
#include "low_latency/ll_state.hpp"

namespace epcomm::bench {

namespace {

constexpr const char* kPointNames[kLlTracePoints] = {"entry",      "credits",   "sent",     "send-arrived",
                                                     "recv-entry", "done-seen", "received", "exit"};

LlTraceSummary download_summary(const Buffer& buffer, int kind, bool clear) {
  const LlState* st = low_latency_state(buffer);
  if (st == nullptr || st->trace_of(kind) == nullptr) return {};
  const DeviceBuffer& trace = st->trace[kind];
  std::vector<std::uint64_t> stamps(trace.bytes() / sizeof(std::uint64_t));
  EPCOMM_CUDA_CHECK(cudaMemcpy(stamps.data(), trace.get(), trace.bytes(), cudaMemcpyDeviceToHost));
  if (clear) EPCOMM_CUDA_CHECK(cudaMemset(trace.get(), 0, trace.bytes()));
  return summarize_ll_trace(stamps, kLlTraceRing, st->num_blocks, kLlTracePoints,
                            {kLlTraceEntry, kLlTraceRecvEntry});
}

}  // namespace

bool ll_traced(const Buffer& buffer) {
  const LlState* st = low_latency_state(buffer);
  return st != nullptr && st->trace_of(kLlKindDispatch) != nullptr;
}

double ll_trace_span_us(const Buffer& buffer, int kind) {
  return download_summary(buffer, kind, /*clear=*/false).span_us;
}

void print_ll_trace(const Buffer& buffer, int kind, const std::string& label, int rank) {
  const LlTraceSummary s = download_summary(buffer, kind, /*clear=*/true);
  if (s.launches == 0) return;
  std::printf("# trace rank %d %s: %d launches; span %.2f us, gap to the next %.2f us (medians)\n", rank,
              label.c_str(), s.launches, s.span_us, s.gap_us);
  for (int p = 0; p < kLlTracePoints; ++p) {
    const TracePointStats& point = s.points[static_cast<std::size_t>(p)];
    if (!point.seen) continue;
    std::printf("#   %-13s first %7.2f  median %7.2f  last %7.2f us\n", kPointNames[p], point.first_us,
                point.median_us, point.last_us);
  }
}

}  // namespace epcomm::bench
