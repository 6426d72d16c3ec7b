#include "bench/preamble.hpp"

#include <string>

namespace epcomm::bench {

namespace {

// The summed time of the kernels called `name`; nothing when there is none.
std::optional<double> time_of(const std::vector<KernelTime>& kernels, const std::string& name) {
  std::optional<double> total;
  for (const KernelTime& k : kernels)
    if (k.name == name) total = total.value_or(0.0) + k.us;
  return total;
}

}  // namespace

std::optional<double> fused_preamble_us(const std::vector<KernelTime>& dispatch_call) {
  return time_of(dispatch_call, kFusedPreambleKernel);
}

std::optional<double> preamble_us(const std::vector<KernelTime>& layout_call,
                                  const std::vector<KernelTime>& dispatch_call) {
  const std::optional<double> layout = time_of(layout_call, kLayoutKernel);
  const std::optional<double> notify = time_of(dispatch_call, kNotifyKernel);
  if (!layout || !notify) return std::nullopt;
  return *layout + *notify;
}

}  // namespace epcomm::bench
