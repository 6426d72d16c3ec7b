// Rank masking's host side (SPEC "Rank masking"; Buffer::mask_rank and friends in rank_mask.cpp).
#pragma once

#include "buffer/buffer_impl.hpp"
#include "core/device_status.hpp"

namespace epcomm {

// BufferOptions::mask_on_timeout: once the timed-out kernels have ended, masks the peer `timeout`
// names and forgets the report (the caller still raises it), so the survivors carry on. Never
// throws: a failure is logged and the report stays.
void mask_after_timeout(Buffer::Impl& m, const DeviceStatus& timeout) noexcept;

}  // namespace epcomm
