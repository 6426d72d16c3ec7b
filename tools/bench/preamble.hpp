// The preamble of a high-throughput dispatch (docs/benchmark.md, `preamble_us`): the device time of
// the kernels that run before the first row moves. A dispatch given topk_idx alone runs one, layout
// and notify fused; the two-call form (`preamble_split_us`), the layout kernel
// (Buffer::get_dispatch_layout) plus the notify kernel (the count exchange that opens
// Buffer::dispatch).
#pragma once

#include <optional>
#include <vector>

#include "epcomm/kernel_time.hpp"

namespace epcomm::bench {

// The launch labels the Buffer gives those kernels (Buffer::last_kernel_times).
inline constexpr const char* kLayoutKernel = "layout";
inline constexpr const char* kNotifyKernel = "notify";
inline constexpr const char* kFusedPreambleKernel = "layout-notify";

// A preamble pass's medians: of the form the whole-dispatch rows use (`us`), and of the two-call
// form (`split_us`); each nothing when it could not be measured. `span_us`: the fused launch's
// device-clock span, its first block's start to notify's exit (EPCOMM_HT_TRACE=1 only; the fused
// form's rows only).
struct PreambleTimes {
  std::optional<double> us, split_us, span_us;
};

// One call's preamble from the kernels of a dispatch given topk_idx alone: the time of the kernel
// named kFusedPreambleKernel. Nothing when there is none.
std::optional<double> fused_preamble_us(const std::vector<KernelTime>& dispatch_call);

// One call's preamble from the kernels of its layout call and of its dispatch call: the summed time
// of the kernels named kLayoutKernel in the first and kNotifyKernel in the second. Nothing when
// either call has no such kernel (timing off, or a cached dispatch, which skips the count exchange).
std::optional<double> preamble_us(const std::vector<KernelTime>& layout_call,
                                  const std::vector<KernelTime>& dispatch_call);

}  // namespace epcomm::bench
