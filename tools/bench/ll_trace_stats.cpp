#include "bench/ll_trace_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bench/require.hpp"
#include "bench/stats.hpp"

namespace epcomm::bench {

namespace {

constexpr double kNotReached = std::numeric_limits<double>::quiet_NaN();

// One recorded launch: per point, each block's offset (us), NaN where the block did not reach it.
struct Launch {
  std::uint64_t begin = 0, end = 0;  // earliest beginning, latest stamp of any block (ns)
  std::vector<std::vector<double>> by_block;  // [point][block]
};

// The values that are not NaN.
std::vector<double> reached(const std::vector<double>& values) {
  std::vector<double> out;
  for (const double v : values)
    if (!std::isnan(v)) out.push_back(v);
  return out;
}

}  // namespace

LlTraceSummary summarize_ll_trace(const std::vector<std::uint64_t>& stamps, int ring, int blocks, int points,
                                  std::initializer_list<int> begin_points) {
  BENCH_CHECK_ARG(ring >= 0 && blocks >= 0 && points >= 1 &&
                      stamps.size() == static_cast<std::size_t>(ring) * blocks * points,
                  "stamps: expected ring x blocks x points = ", ring, " x ", blocks, " x ", points,
                  " values, got ", stamps.size());
  std::vector<Launch> launches;
  for (int r = 0; r < ring; ++r) {
    const std::uint64_t* slot = stamps.data() + static_cast<std::size_t>(r) * blocks * points;
    Launch l;
    l.begin = std::numeric_limits<std::uint64_t>::max();
    for (int b = 0; b < blocks; ++b)
      for (const int p : begin_points)
        if (const std::uint64_t t = slot[b * points + p]; t != 0) l.begin = std::min(l.begin, t);
    if (l.begin == std::numeric_limits<std::uint64_t>::max()) continue;
    l.by_block.assign(static_cast<std::size_t>(points),
                      std::vector<double>(static_cast<std::size_t>(blocks), kNotReached));
    for (int b = 0; b < blocks; ++b)
      for (int p = 0; p < points; ++p)
        if (const std::uint64_t t = slot[b * points + p]; t != 0 && t >= l.begin) {
          l.by_block[static_cast<std::size_t>(p)][static_cast<std::size_t>(b)] =
              static_cast<double>(t - l.begin) * 1e-3;
          l.end = std::max(l.end, t);
        }
    launches.push_back(std::move(l));
  }
  std::sort(launches.begin(), launches.end(),
            [](const Launch& a, const Launch& b) { return a.begin < b.begin; });

  LlTraceSummary summary;
  summary.launches = static_cast<int>(launches.size());
  summary.points.resize(static_cast<std::size_t>(points));
  if (launches.empty()) return summary;
  summary.by_block.assign(static_cast<std::size_t>(points),
                          std::vector<double>(static_cast<std::size_t>(blocks), kNotReached));
  for (std::size_t p = 0; p < summary.by_block.size(); ++p)
    for (std::size_t b = 0; b < summary.by_block[p].size(); ++b) {
      std::vector<double> across;  // this block's offsets over the launches
      for (const Launch& l : launches) across.push_back(l.by_block[p][b]);
      if (const std::vector<double> r = reached(across); !r.empty()) summary.by_block[p][b] = median(r);
    }
  std::vector<double> spans, gaps;
  for (std::size_t i = 0; i < launches.size(); ++i) {
    spans.push_back(static_cast<double>(launches[i].end - launches[i].begin) * 1e-3);
    if (i + 1 < launches.size() && launches[i + 1].begin > launches[i].end)
      gaps.push_back(static_cast<double>(launches[i + 1].begin - launches[i].end) * 1e-3);
  }
  summary.span_us = median(spans);
  summary.gap_us = gaps.empty() ? 0.0 : median(gaps);
  for (int p = 0; p < points; ++p) {
    std::vector<double> first, mid, last;
    for (const Launch& l : launches) {
      const std::vector<double> o = reached(l.by_block[static_cast<std::size_t>(p)]);
      if (o.empty()) continue;
      first.push_back(*std::min_element(o.begin(), o.end()));
      mid.push_back(median(o));
      last.push_back(*std::max_element(o.begin(), o.end()));
    }
    if (first.empty()) continue;
    TracePointStats& s = summary.points[static_cast<std::size_t>(p)];
    s.seen = true;
    s.first_us = median(first);
    s.median_us = median(mid);
    s.last_us = median(last);
  }
  return summary;
}

LlTraceSummary summarize_ll_trace(const LlTrace& trace) {
  if (trace.empty()) return {};
  const int entry = trace.point("entry"), recv_entry = trace.point("recv-entry");
  BENCH_CHECK_ARG(entry >= 0, "trace: expected a point named entry, got ", trace.points.size(),
                  " points without it");
  const int points = static_cast<int>(trace.points.size());
  // notify's trace has no receive-only launches, so no recv-entry; its times count from "launch"
  // (the first block's start of the fused launch) where it has that point.
  const int launch = trace.point("launch");
  if (recv_entry < 0)
    return summarize_ll_trace(trace.stamps, trace.ring, trace.blocks, points, {launch >= 0 ? launch : entry});
  return summarize_ll_trace(trace.stamps, trace.ring, trace.blocks, points, {entry, recv_entry});
}

}  // namespace epcomm::bench
