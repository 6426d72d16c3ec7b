// Turns a DeviceStatus record left by a kernel into the epcomm::Error the host raises.
#pragma once

#include <cstdint>

#include "epcomm/error.hpp"
#include "core/device_status.hpp"

namespace epcomm {

Error status_error(const DeviceStatus& status, std::uint64_t timeout_ms, const char* file, int line);

}  // namespace epcomm
