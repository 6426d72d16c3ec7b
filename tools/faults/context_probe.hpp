// Is this process's CUDA context still usable after an error? A tiny kernel on a fresh stream, a
// copy back and a device-wide synchronisation (which also waits for every block of a kernel that
// timed out: they must all have exited).
#pragma once

#include <string>

namespace epcomm::faults {

// "" when the context works; else what failed, with the CUDA error text.
std::string check_cuda_context();

}  // namespace epcomm::faults
