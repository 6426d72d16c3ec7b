// Where a low-latency kernel spends its time, from its own clock (Buffer::low_latency_trace), and
// the high-throughput dispatch's count exchange (Buffer::notify_trace, in the same form). A
// diagnostic: recorded only when EPCOMM_LL_TRACE=1 (EPCOMM_HT_TRACE=1) was set when the Buffer was
// made (it adds a store per block at each point); its format may change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace epcomm {

// The two low-latency kernels (low_latency_dispatch, low_latency_combine).
enum class LlKernel : int { kDispatch = 0, kCombine = 1 };

// The phase timestamps of one kernel's last `ring` calls. Thread 0 of every block stores the
// device's global timer (ns) when the block reaches each point, in the slot of its call (the call's
// sequence number modulo `ring`: a slot is overwritten `ring` calls later). A launch that sends
// clears its block's stamps first; the receive launch of a split call (return_recv_hook) adds its
// points to its send's slot. The points, in order:
//   entry         a launch that sends began
//   credits       peers freed the staging this call writes
//   list-binned   (the direct dispatch's list blocks) the first round of top-k ids binned by expert
//   list-placed   (the direct dispatch's list blocks) that round's places stored in the holders
//   sent          the block's sends were issued
//   send-arrived  the block signalled its sends' completion to every peer
//   recv-entry    a receive-only launch began (split calls)
//   done-seen     every source's completion signal was seen
//   item-ready    (the direct dispatch's row blocks with an item) thread 0's first item was loaded
//                 and located: its row stores come next
//   received      the block's receive work is done
//   exit          the block gave every peer its credits back
struct LlTrace {
  int ring = 0;                     // launches kept
  int blocks = 0;                   // blocks of every launch
  std::vector<std::string> points;  // the names above, in the order of the stamps
  // [ring][blocks][points.size()] row-major: ns of the device's global timer; 0 where no block
  // stamped (a point the launch skipped, a slot no launch used yet).
  std::vector<std::uint64_t> stamps;

  bool empty() const { return stamps.empty(); }
  // The index of a point in `points`, or -1 when there is none of that name.
  int point(const std::string& name) const {
    for (std::size_t i = 0; i < points.size(); ++i)
      if (points[i] == name) return static_cast<int>(i);
    return -1;
  }
};

}  // namespace epcomm
