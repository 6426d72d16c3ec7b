// A barrier across the ranks of one NVLink domain, with bounded waits.
#pragma once

#include "core/domain_view.hpp"

namespace epcomm {

// Launches one small block that signals every domain peer and waits for all of them.
void launch_domain_barrier(const DomainView& view, void* stream);

}  // namespace epcomm
