// Shared by the probes that time a load's return: the clock read once a loaded value is in
// registers. Needs -Isrc (the library's PTX wrappers).
#pragma once

#include <cstdint>

#include "core/ptx.cuh"  // globaltimer

// The clock once `v` is in registers: a store that needs the value (never taken, but its predicate
// reads v) comes first, and warps issue in order. (An asm operand the instruction does not name
// makes no dependency: entry_load_probe's first run timed nothing but the clock reads.)
__device__ __forceinline__ std::uint64_t timer_after(const int4& v, int* sink) {
  const int x = v.x ^ v.y ^ v.z ^ v.w;
  if (x == 0x7fffffff) *sink = x;
  return epcomm::ptx::globaltimer();
}
