#include "core/pdl.hpp"

#include "core/env.hpp"

namespace epcomm {

bool pdl_enabled() {
  static const bool enabled = env::get_bool("EPCOMM_PDL");
  return enabled;
}

}  // namespace epcomm
