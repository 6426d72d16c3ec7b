// Programmatic dependent launch for kernel files: the device half (pdl_entry) with the host half
// (launch_kernel, pdl.hpp).
#pragma once

#include "core/pdl.hpp"
#include "core/ptx.cuh"

namespace epcomm {

// The first statement of every kernel started by launch_kernel, in every thread: waits until the
// kernels ahead of it on the stream have completed and their writes are visible (at once when the
// launch was ordinary), then lets the kernel behind it be placed (which waits here in turn). A
// thread that returned before this call could let the grid complete before the one ahead of it.
__device__ __forceinline__ void pdl_entry() {
  ptx::wait_prior_grids();
  ptx::allow_dependent_grids();
}

}  // namespace epcomm
