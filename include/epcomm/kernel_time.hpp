// The device time of one kernel of an operation (Buffer::last_kernel_times). A diagnostic: the
// names are the launches' labels ("layout", "notify", "dispatch", ...) and may change.
#pragma once

#include <string>

namespace epcomm {

struct KernelTime {
  std::string name;  // the launch's label
  double us = 0;     // its duration on the device, in microseconds (CUDA events around it)
};

}  // namespace epcomm
