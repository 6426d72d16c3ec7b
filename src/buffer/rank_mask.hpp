// Rank masking's host side (SPEC "Rank masking"; Buffer::mask_rank and friends in rank_mask.cpp).
#pragma once

#include "buffer/buffer_impl.hpp"
#include "core/device_status.hpp"

namespace epcomm {

// BufferOptions::mask_on_timeout: once the timed-out kernels have ended, masks the peer `timeout`
// names and forgets the report (the caller still raises it), so the survivors carry on. Never
// throws: a failure is logged and the report stays.
void mask_after_timeout(Buffer::Impl& m, const DeviceStatus& timeout) noexcept;

// True once this Buffer knows a peer is gone or out of step: a timeout is on record, or a rank is
// masked. Its destructor then skips collective teardown steps that would wait for that peer.
bool peer_lost(const Buffer::Impl& m) noexcept;

}  // namespace epcomm
