// A phase-trace record (a device buffer of uint64 timestamps: Buffer::low_latency_trace,
// Buffer::notify_trace) read back to the host.
#pragma once

#include <cstdint>
#include <vector>

#include "core/cuda_raii.hpp"

namespace epcomm {

// The record's stamps, copied after waiting for the device (the kernels ran on the callers'
// streams: a device-wide wait covers them all); with `clear`, the record is then zeroed before the
// next call can stamp, so a later read holds only later calls.
std::vector<std::uint64_t> copy_trace_stamps(const DeviceBuffer& record, bool clear);

}  // namespace epcomm
