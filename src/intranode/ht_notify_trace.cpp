// Buffer::notify_trace: notify's phase stamps (EPCOMM_HT_TRACE) read back.
#include <iterator>

#include "buffer/buffer_impl.hpp"
#include "buffer/trace_copy.hpp"
#include "intranode/ht_args.hpp"

namespace epcomm {

LlTrace Buffer::notify_trace(bool clear) {
  const DeviceBuffer& record = impl_->notify_trace;
  if (record.bytes() == 0) return {};
  return LlTrace{.ring = kNotifyTraceRing,
                 .blocks = 1,
                 .points = {std::begin(kNotifyTracePointNames), std::end(kNotifyTracePointNames)},
                 .stamps = copy_trace_stamps(record, clear)};
}

}  // namespace epcomm
