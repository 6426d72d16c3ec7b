#include "core/pdl.hpp"

#include "core/env.hpp"

namespace epcomm {

bool pdl_enabled() {
  // Read at the first launch: the variable, and whether the device is sm_90 or later (where the
  // kernels' grid dependency instructions exist; below it they compile to nothing).
  static const bool enabled = [] {
    if (!env::get_bool("EPCOMM_PDL")) return false;
    int device = 0, major = 0;
    return cudaGetDevice(&device) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
           major >= 9;
  }();
  return enabled;
}

}  // namespace epcomm
