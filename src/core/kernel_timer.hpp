// Optional timing of one call (EPCOMM_KERNEL_TIMING=1): an event when the call's work may start on
// the communication stream, an event pair around each launch, and host timestamps at the call's
// steps. The kernels' summed durations are the call's kernel time; the timeline adds the gaps
// between them and where the host was, and the copy stream's work (copy-engine paths) on a track of
// its own. Off by default (the events cost host time per call).
#pragma once

#include <cuda_runtime_api.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/cuda_raii.hpp"

namespace epcomm {

// One launch of a call: the idle time on the stream before it (after the call's start or the
// previous launch) and its duration.
struct TimelineKernel {
  const char* label;
  double gap_before_us;
  double kernel_us;
};

// Where the host was, in microseconds after the call began.
struct TimelineHostStep {
  const char* label;
  double at_us;
};

// Work on another stream (a chunk's copies and marks): when it began, in microseconds after the
// call's start on the communication stream, and how long it took.
struct TimelineCopy {
  const char* label;
  double start_us;
  double copy_us;
};

// "gpu: +2.1 notify 10.3 +18.0 dispatch 66.0 | host: checked 1.2, notify-queued 5.3"
// and, with copies, " | copies: chunk @40.2 41.0, chunk @81.3 40.7"
std::string format_timeline(const std::vector<TimelineKernel>& kernels,
                            const std::vector<TimelineHostStep>& host,
                            const std::vector<TimelineCopy>& copies = {});

class KernelTimer {
 public:
  explicit KernelTimer(bool enabled) : enabled_(enabled) {}
  KernelTimer(KernelTimer&&) noexcept = default;
  KernelTimer& operator=(KernelTimer&&) noexcept = default;
  bool enabled() const { return enabled_; }
  // Between calls only: the next reset() starts recording (or stops) accordingly.
  void set_enabled(bool enabled) { enabled_ = enabled; }
  // At the start of a call, once `stream` waits for the caller's work.
  void reset(cudaStream_t stream);
  void begin(cudaStream_t stream, const char* label);
  void end(cudaStream_t stream);
  // Around work on another stream than the call's communication stream (not kernel time); entries
  // may be on several streams.
  void begin_copy(cudaStream_t stream, const char* label);
  void end_copy(cudaStream_t stream);
  void host_step(const char* label);
  // Microseconds of the last call's kernels; waits for them. -1 when disabled.
  double total_us();
  // The last call's kernels with the gaps before them, and its host steps; waits for the kernels.
  // Empty when disabled.
  std::string timeline();
  // The last call's kernels in launch order, each with the gap before it; waits for them. Empty
  // when disabled or when the call launched nothing.
  std::vector<TimelineKernel> kernels();

 private:
  std::vector<TimelineCopy> copies();

  using Clock = std::chrono::steady_clock;
  bool enabled_;
  std::vector<Event> events_;  // [start, (begin, end) per launch], reused across calls
  std::vector<const char*> labels_;
  std::size_t used_ = 0;
  std::vector<Event> copy_events_;  // (begin, end) per copy track entry
  std::vector<const char*> copy_labels_;
  std::size_t copies_used_ = 0;
  Clock::time_point host_start_;
  std::vector<TimelineHostStep> host_;
};

}  // namespace epcomm
