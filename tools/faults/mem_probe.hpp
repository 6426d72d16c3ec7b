// What a long run must not leak, read from the process itself: resident host memory (VmRSS of
// /proc/self/status) and open file descriptors (/proc/self/fd). Device memory is read by the soak
// (cudaMemGetInfo). Host code, CPU-tested.
#pragma once

#include <cstdint>
#include <string>

namespace epcomm::faults {

// The value in KiB of `key` ("VmRSS") in the text of a /proc/<pid>/status file; -1 when absent.
std::int64_t status_kib(const std::string& status_text, const std::string& key);
// This process's resident memory in KiB; -1 when /proc cannot be read.
std::int64_t rss_kib();
// File descriptors open in this process (the directory's own descriptor not counted); -1 when
// /proc/self/fd cannot be read.
int open_fd_count();

// Whether `after` is at most `bound` above `before` (a drop is never a leak).
inline bool grew_within(std::int64_t before, std::int64_t after, std::int64_t bound) {
  return after - before <= bound;
}

}  // namespace epcomm::faults
