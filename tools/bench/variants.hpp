// The schedules of the high-throughput combine kernel the benchmark runs side by side in one run
// (same data, so their ratios compare), and the row name of each.
#pragma once

#include <string>
#include <vector>

namespace epcomm::bench {

struct CombineSchedule {
  bool phased = true;  // EPCOMM_HT_PHASED: every block moves rows, then reduces
  int pull =
      0;  // EPCOMM_HT_COMBINE_PULL: 0 push; the owners read staged rows: 1 by SMs, 2 by the copy engine
};

struct CombineVariant {
  std::string impl;  // row name: "epcomm" for the Buffer's own schedule, else "epcomm-<variant>"
  CombineSchedule schedule;
};

// The Buffer's own schedule first, then the others: push and pull (staged by SMs), each phased and
// overlapped, and pull staged by the copy engine (which has no senders, so no overlapped form).
std::vector<CombineVariant> combine_variants(const CombineSchedule& own);

}  // namespace epcomm::bench
