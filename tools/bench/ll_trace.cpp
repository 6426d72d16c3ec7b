#include "bench/ll_trace.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "bench/stats.hpp"
#include "kernels/ll_args.hpp"
#include "runtime/cuda_check.hpp"
#include "runtime/ll_state.hpp"

namespace epcomm::bench {

namespace {

constexpr const char* kPointNames[kLlTracePoints] = {"entry",      "credits",   "sent",     "send-arrived",
                                                     "recv-entry", "done-seen", "received", "exit"};

// One recorded launch: per point, the offsets (us) of the blocks that reached it.
struct Launch {
  std::uint64_t begin = 0, end = 0;  // first block's entry, last stamp of any block (ns)
  std::vector<double> offsets[kLlTracePoints];
};

std::vector<Launch> read_launches(const std::vector<std::uint64_t>& stamps, int blocks) {
  std::vector<Launch> launches;
  for (int r = 0; r < kLlTraceRing; ++r) {
    const std::uint64_t* slot = stamps.data() + static_cast<std::size_t>(r) * blocks * kLlTracePoints;
    Launch l;
    l.begin = std::numeric_limits<std::uint64_t>::max();
    for (int b = 0; b < blocks; ++b)
      for (int p : {kLlTraceEntry, kLlTraceRecvEntry})
        if (const std::uint64_t t = slot[b * kLlTracePoints + p]; t != 0) l.begin = std::min(l.begin, t);
    if (l.begin == std::numeric_limits<std::uint64_t>::max()) continue;
    for (int b = 0; b < blocks; ++b)
      for (int p = 0; p < kLlTracePoints; ++p)
        if (const std::uint64_t t = slot[b * kLlTracePoints + p]; t >= l.begin) {
          l.offsets[p].push_back(static_cast<double>(t - l.begin) * 1e-3);
          l.end = std::max(l.end, t);
        }
    launches.push_back(std::move(l));
  }
  std::sort(launches.begin(), launches.end(),
            [](const Launch& a, const Launch& b) { return a.begin < b.begin; });
  return launches;
}

}  // namespace

namespace {

std::vector<Launch> download_launches(const Buffer& buffer, int kind, bool clear) {
  const Buffer::LlState* st = buffer.low_latency_state();
  if (st == nullptr || st->trace_of(kind) == nullptr) return {};
  const DeviceBuffer& trace = st->trace[kind];
  std::vector<std::uint64_t> stamps(trace.bytes() / sizeof(std::uint64_t));
  EPCOMM_CUDA_CHECK(cudaMemcpy(stamps.data(), trace.get(), trace.bytes(), cudaMemcpyDeviceToHost));
  if (clear) EPCOMM_CUDA_CHECK(cudaMemset(trace.get(), 0, trace.bytes()));
  return read_launches(stamps, st->num_blocks);
}

double span_us(const Launch& l) {
  return static_cast<double>(l.end - l.begin) * 1e-3;
}

}  // namespace

bool ll_traced(const Buffer& buffer) {
  const Buffer::LlState* st = buffer.low_latency_state();
  return st != nullptr && st->trace_of(kLlKindDispatch) != nullptr;
}

double ll_trace_span_us(const Buffer& buffer, int kind) {
  std::vector<double> spans;
  for (const Launch& l : download_launches(buffer, kind, /*clear=*/false)) spans.push_back(span_us(l));
  return spans.empty() ? 0.0 : median(spans);
}

void print_ll_trace(const Buffer& buffer, int kind, const std::string& label, int rank) {
  const std::vector<Launch> launches = download_launches(buffer, kind, /*clear=*/true);
  if (launches.empty()) return;
  std::vector<double> spans, gaps;
  for (std::size_t i = 0; i < launches.size(); ++i) {
    spans.push_back(span_us(launches[i]));
    if (i + 1 < launches.size() && launches[i + 1].begin > launches[i].end)
      gaps.push_back(static_cast<double>(launches[i + 1].begin - launches[i].end) * 1e-3);
  }
  std::printf("# trace rank %d %s: %zu launches; span %.2f us, gap to the next %.2f us (medians)\n", rank,
              label.c_str(), launches.size(), median(spans), gaps.empty() ? 0.0 : median(gaps));
  for (int p = 0; p < kLlTracePoints; ++p) {
    std::vector<double> first, mid, last;
    for (const Launch& l : launches) {
      std::vector<double> o = l.offsets[p];
      if (o.empty()) continue;
      std::sort(o.begin(), o.end());
      first.push_back(o.front());
      mid.push_back(o[o.size() / 2]);
      last.push_back(o.back());
    }
    if (first.empty()) continue;
    std::printf("#   %-13s first %7.2f  median %7.2f  last %7.2f us\n", kPointNames[p], median(first),
                median(mid), median(last));
  }
}

}  // namespace epcomm::bench
