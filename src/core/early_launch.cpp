#include "core/early_launch.hpp"

#include "core/env.hpp"

namespace epcomm {

bool early_launch_enabled() {
  static const bool enabled = env::get_bool("EPCOMM_EARLY_LAUNCH");
  return enabled;
}

}  // namespace epcomm
