// The preamble of a high-throughput dispatch (docs/benchmark.md, `preamble_us`): the device time of
// the layout kernel (Buffer::get_dispatch_layout) plus the notify kernel (the count exchange that
// opens Buffer::dispatch), i.e. the kernels that run before the first row moves.
#pragma once

#include <optional>
#include <vector>

#include "epcomm/kernel_time.hpp"

namespace epcomm::bench {

// The launch labels the Buffer gives those kernels (Buffer::last_kernel_times).
inline constexpr const char* kLayoutKernel = "layout";
inline constexpr const char* kNotifyKernel = "notify";

// One call's preamble from the kernels of its layout call and of its dispatch call: the summed time
// of the kernels named kLayoutKernel in the first and kNotifyKernel in the second. Nothing when
// either call has no such kernel (timing off, or a cached dispatch, which skips the count exchange).
std::optional<double> preamble_us(const std::vector<KernelTime>& layout_call,
                                  const std::vector<KernelTime>& dispatch_call);

}  // namespace epcomm::bench
