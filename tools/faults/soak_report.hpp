// The soak's result (tools/faults/soak.cpp) as JSON: counts per mode, every rank's memory and
// descriptors before and after, the bounds and the verdicts. Host code, CPU-tested (the table
// script reads what this writes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace epcomm::faults {

struct SoakUsage {
  std::int64_t device_used = 0;  // bytes: cudaMemGetInfo's total - free (every process on the GPU)
  std::int64_t rss_kib = 0;
  std::int64_t fds = 0;
};

struct SoakPhase {
  std::int64_t pairs = 0;   // dispatch/combine pairs run
  std::int64_t checks = 0;  // of them compared with the reference
  int shapes = 0;
  double seconds = 0;  // informational, never a pass/fail criterion
};

struct SoakReport {
  int num_ranks = 2;
  std::int64_t check_every = 0;
  SoakPhase ll, ht;
  std::vector<SoakUsage> before, after;                            // [rank]
  std::int64_t device_bound = 0, rss_bound_kib = 0, fd_bound = 0;  // allowed growth
  bool device_ok = false, rss_ok = false, fds_ok = false, passed = false;
};

std::string soak_json(const SoakReport& report);

}  // namespace epcomm::faults
