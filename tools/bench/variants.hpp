// The ways of moving rows the high-throughput benchmark runs side by side in one run (same data,
// so their ratios compare), and the row name of each: dispatch by SM stores or by the copy engine,
// and the schedules of the combine kernel.
#pragma once

#include <string>
#include <vector>

namespace epcomm::bench {

struct CombineSchedule {
  int pull = 0;  // HtOptions::combine: 0 push; the owners read staged rows: 1 by SMs, 2 by the copy engine
  int copy_chunks = 0;  // HtOptions::combine_copy_chunks: > 0, the copy engine pushes (pull unused)
};

struct CombineVariant {
  std::string impl;  // row name: "epcomm" for the Buffer's own schedule, else "epcomm-<variant>"
  CombineSchedule schedule;
};

// The Buffer's own schedule first, then the others: push, pull staged by the SMs, pull staged by the
// copy engine, and push by the copy engine in kBenchCopyChunks chunks.
std::vector<CombineVariant> combine_variants(const CombineSchedule& own);

// HtOptions::dispatch_copy_chunks of the copy-engine dispatch rows named plainly "epcomm-ce".
inline constexpr int kBenchCopyChunks = 4;

struct DispatchVariant {
  std::string impl;     // "epcomm" for the Buffer's own, "epcomm-ce[<chunks>]" or "epcomm-sm" (SM stores)
  int copy_chunks = 0;  // HtOptions::dispatch_copy_chunks
};

// The Buffer's own dispatch first, then the other way: when the Buffer's uses SM stores
// (own_copy_chunks 0), the copy engine in each of `ce_chunks` chunk counts ("epcomm-ce" for
// kBenchCopyChunks, "epcomm-ce<n>" otherwise); else SM stores.
std::vector<DispatchVariant> dispatch_variants(int own_copy_chunks,
                                               const std::vector<int>& ce_chunks = {kBenchCopyChunks});

}  // namespace epcomm::bench
