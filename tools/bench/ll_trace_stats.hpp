// The statistics of a low-latency phase trace (epcomm/ll_trace.hpp, bench/ll_trace.hpp): host-only,
// so CPU tests cover them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "epcomm/ll_trace.hpp"

namespace epcomm::bench {

// One phase point over the recorded launches: the median over launches of the earliest, the
// median and the latest block to reach it (us after the launch's first block began).
struct TracePointStats {
  bool seen = false;  // some block of some launch reached it
  double first_us = 0, median_us = 0, last_us = 0;
};

struct LlTraceSummary {
  int launches = 0;
  double span_us = 0;  // median over launches: the first block's beginning to the last stamp
  double gap_us = 0;   // median over consecutive launches: one's last stamp to the next's beginning
  std::vector<TracePointStats> points;  // one per point
  // [point][block]: the median over launches of the block's stamp (us after its launch began), or
  // NaN where the block never reached the point. Tells blocks of different roles apart (e.g. the
  // dispatch's blocks with row items against those without).
  std::vector<std::vector<double>> by_block;
};

// stamps: [ring][blocks][points] device timestamps in ns, 0 where nothing was stamped. A ring slot
// with no stamp at any of `begin_points` holds no launch; a launch begins at the earliest such
// stamp of any block, and stamps before it (left by an older launch) are ignored.
LlTraceSummary summarize_ll_trace(const std::vector<std::uint64_t>& stamps, int ring, int blocks, int points,
                                  std::initializer_list<int> begin_points);

// The same for a Buffer's trace: a launch begins at its "entry" or "recv-entry" stamps (notify's
// trace has no recv-entry). An empty trace has no launch; one without "entry" is refused
// (epcomm::Error).
LlTraceSummary summarize_ll_trace(const LlTrace& trace);

}  // namespace epcomm::bench
