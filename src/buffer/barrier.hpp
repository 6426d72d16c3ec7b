// A barrier across the ranks of one NVLink domain, with bounded waits.
#pragma once

#include "core/device_status.hpp"
#include "core/domain_view.hpp"

namespace epcomm {

// Launches one small block that signals every domain peer and waits for all of them; a timeout is
// reported under `op` (the operation the barrier belongs to).
void launch_domain_barrier(const DomainView& view, void* stream, OpId op = OpId::kBarrier);

}  // namespace epcomm
