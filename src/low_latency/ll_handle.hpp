// The state behind an epcomm::LlHandle (opaque in the public API): which buffer, which dispatch and
// which output half a low-latency dispatch wrote, and the shapes its combine must match.
#pragma once

#include <cstdint>
#include <memory>

#include "core/handle_access.hpp"
#include "epcomm/low_latency.hpp"

namespace epcomm {

struct LlHandle::State {
  int num_ranks = 0;
  int num_local_experts = 0;
  std::int64_t num_tokens = 0;  // T_r: tokens this rank dispatched
  int num_topk = 0;
  std::int64_t max_tokens_per_rank = 0;  // T
  std::int64_t hidden = 0;
  Tensor recv_count, layout_range, src_info;  // as in LlDispatchResult
  const void* owner = nullptr;                // the LlState of the Buffer that made it
  std::uint64_t dispatch_index = 0;           // 1-based count of dispatches on that Buffer
  int half = 0;                               // output half it wrote
  std::shared_ptr<bool> received;             // false while a split dispatch awaits its receive
};

// The state of a defined handle (checked by the caller: check_ll_handle).
inline const LlHandle::State& ll_handle_state(const LlHandle& h) { return *HandleAccess::state(h); }

}  // namespace epcomm
