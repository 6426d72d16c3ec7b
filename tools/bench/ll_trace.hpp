// Where a low-latency launch spends its time, from the kernels' own phase timestamps
// (EPCOMM_LL_TRACE=1; Buffer::low_latency_trace, epcomm/ll_trace.hpp). A diagnostic beside the
// timed rows.
#pragma once

#include <optional>
#include <string>

#include "epcomm/buffer.hpp"

namespace epcomm::bench {

// Prints, for the launches of `kernel` recorded since the last call, the median over launches of
// each phase point's earliest, median and latest block (us after the launch's first block began),
// the launch span and the gap to the next launch; then clears the record. Nothing when the Buffer
// was made without EPCOMM_LL_TRACE.
void print_ll_trace(Buffer& buffer, LlKernel kernel, const std::string& label, int rank);

// The same for the high-throughput dispatch's count exchange (notify, one block; EPCOMM_HT_TRACE=1,
// Buffer::notify_trace): its calls recorded since the last read, then clears the record. Nothing
// when the Buffer was made without EPCOMM_HT_TRACE. Returns the median span (the launch's first
// stamp to its last, device clock), nothing when no call was recorded.
std::optional<double> print_notify_trace(Buffer& buffer, const std::string& label, int rank);

// True when the Buffer records phase timestamps (made with EPCOMM_LL_TRACE=1).
bool ll_traced(Buffer& buffer);

// The median over the recorded launches of `kernel` of the span from the first block's entry to
// the last block's last stamp (us): the kernel's duration on the device clock. 0 when none recorded.
double ll_trace_span_us(Buffer& buffer, LlKernel kernel);

}  // namespace epcomm::bench
