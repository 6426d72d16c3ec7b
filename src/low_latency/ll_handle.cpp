// LlHandle's accessors (the public, documented part of an opaque handle).
#include "low_latency/ll_handle.hpp"

namespace epcomm {

int LlHandle::num_ranks() const { return state_ ? state_->num_ranks : 0; }
int LlHandle::num_local_experts() const { return state_ ? state_->num_local_experts : 0; }
std::int64_t LlHandle::hidden() const { return state_ ? state_->hidden : 0; }
std::int64_t LlHandle::num_tokens() const { return state_ ? state_->num_tokens : 0; }
int LlHandle::num_topk() const { return state_ ? state_->num_topk : 0; }

}  // namespace epcomm
