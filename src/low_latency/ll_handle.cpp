// LlHandle's accessors (the public, documented part of an opaque handle).
#include "low_latency/ll_handle.hpp"

namespace epcomm {

std::int64_t LlHandle::num_tokens() const { return state_ ? state_->num_tokens : 0; }
int LlHandle::num_topk() const { return state_ ? state_->num_topk : 0; }

}  // namespace epcomm
