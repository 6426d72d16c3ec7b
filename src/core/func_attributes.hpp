// Kernel attributes set once per device and raised, never lowered. A launcher calls
// raise_func_attribute on every launch; the driver is called only for a new or larger value, so a
// launch costs no cudaFuncSetAttribute call in the steady state, and two threads launching with
// different shared-memory sizes never lower the limit under each other's launch.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <tuple>

namespace epcomm {

// The bookkeeping, apart from CUDA: the largest value set per (device, kernel, attribute).
class AttributeLedger {
 public:
  // True when `value` is more than what was recorded for the key, or nothing was.
  bool needs(int device, const void* kernel, int attribute, int value);
  // Records that `value` was set for the key (after the driver accepted it).
  void record(int device, const void* kernel, int attribute, int value);

 private:
  using Key = std::tuple<int, const void*, int>;
  std::mutex mutex_;
  std::map<Key, int> set_;
};

// cudaFuncSetAttribute(kernel, attribute, value) on the current device, unless this process has
// already set it there to `value` or more. For cudaFuncAttributeMaxDynamicSharedMemorySize (a
// limit: a larger one serves every smaller launch) and for a preference always given the same value
// (the carveout).
void raise_func_attribute(const void* kernel, cudaFuncAttribute attribute, int value);

}  // namespace epcomm
