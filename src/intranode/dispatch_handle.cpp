// DispatchHandle's accessors (the public, documented part of an opaque handle).
#include "intranode/dispatch_handle.hpp"

#include "core/check.hpp"

namespace epcomm {

namespace {
const DispatchHandle::State& state_or_empty(const DispatchHandle& h) {
  static const DispatchHandle::State empty{};
  const DispatchHandle::State* s = HandleAccess::state(h);
  return s != nullptr ? *s : empty;
}
}  // namespace

int DispatchHandle::num_ranks() const { return state_or_empty(*this).num_ranks; }
int DispatchHandle::num_local_experts() const { return state_or_empty(*this).num_local_experts; }
std::int64_t DispatchHandle::num_tokens() const { return state_or_empty(*this).num_tokens; }
std::int64_t DispatchHandle::num_rows() const { return state_or_empty(*this).num_rows; }
std::int64_t DispatchHandle::num_recv_tokens() const { return state_or_empty(*this).num_recv_tokens; }
Tensor DispatchHandle::num_recv_tokens_device() const { return state_or_empty(*this).num_recv_dev.view(); }
Tensor DispatchHandle::num_recv_tokens_per_expert_device() const {
  return state_or_empty(*this).num_recv_tokens_per_expert.view();
}

void check_handle_mask(const DispatchHandle::State& h, std::uint64_t mask_changes, const char* op) {
  EPCOMM_CHECK_ARG(h.mask_changes == mask_changes, "handle: ", op,
                   " got a handle whose dispatch ran before the rank mask last changed (mask_rank, "
                   "mask_on_timeout or clear_rank_mask); its routing names other ranks: dispatch again "
                   "without the handle");
}

}  // namespace epcomm
