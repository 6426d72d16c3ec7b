// The device half of early launch (early_launch.hpp). Device code only.
#pragma once

#include "core/ptx.cuh"

namespace epcomm {

// The first statement of every kernel launched by launch_early, in every thread: waits until the
// kernels ahead of it on the stream have completed and their writes are visible (at once when the
// launch was not early), then lets the kernel behind it be scheduled (which waits here in turn).
// A thread that returned before this call could let the grid complete before the one ahead of it.
__device__ __forceinline__ void early_launch_entry() {
  ptx::wait_prior_grids();
  ptx::allow_dependent_grids();
}

}  // namespace epcomm
