#include "bench/ll_trace.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "bench/ll_trace_stats.hpp"

namespace epcomm::bench {

bool ll_traced(Buffer& buffer) {
  return !buffer.low_latency_trace(LlKernel::kDispatch).empty();
}

double ll_trace_span_us(Buffer& buffer, LlKernel kernel) {
  return summarize_ll_trace(buffer.low_latency_trace(kernel)).span_us;
}

namespace {

// The summary of `trace` (print_ll_trace's lines); with `by_block`, each block's median per point.
// Returns the median span, nothing when no launch was recorded.
std::optional<double> print_trace(const LlTrace& trace, const std::string& label, int rank, bool by_block) {
  const LlTraceSummary s = summarize_ll_trace(trace);
  if (s.launches == 0) return std::nullopt;
  std::printf("# trace rank %d %s: %d launches; span %.2f us, gap to the next %.2f us (medians)\n", rank,
              label.c_str(), s.launches, s.span_us, s.gap_us);
  for (std::size_t p = 0; p < s.points.size(); ++p) {
    const TracePointStats& point = s.points[p];
    if (!point.seen) continue;
    std::printf("#   %-13s first %7.2f  median %7.2f  last %7.2f us\n", trace.points[p].c_str(),
                point.first_us, point.median_us, point.last_us);
  }
  if (!by_block) return s.span_us;
  // Each block's median per point, block 0 first ("-": never reached).
  for (std::size_t p = 0; p < s.by_block.size(); ++p) {
    if (!s.points[p].seen) continue;
    std::printf("#   by block %-13s", trace.points[p].c_str());
    for (const double us : s.by_block[p]) {
      if (std::isnan(us))
        std::printf(" -");
      else
        std::printf(" %.2f", us);
    }
    std::printf("\n");
  }
  return s.span_us;
}

}  // namespace

void print_ll_trace(Buffer& buffer, LlKernel kernel, const std::string& label, int rank) {
  // EPCOMM_LL_TRACE=2 (the library checked the value when the Buffer was made): by block too.
  const char* level = std::getenv("EPCOMM_LL_TRACE");
  print_trace(buffer.low_latency_trace(kernel, /*clear=*/true), label, rank,
              level != nullptr && std::string_view(level) == "2");
}

std::optional<double> print_notify_trace(Buffer& buffer, const std::string& label, int rank) {
  return print_trace(buffer.notify_trace(/*clear=*/true), label, rank, /*by_block=*/false);
}

}  // namespace epcomm::bench
