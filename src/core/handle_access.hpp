// How epcomm's own code (and its tests) make the public API's opaque handles and read their state.
// The states themselves are defined by their modes: intranode/dispatch_handle.hpp,
// low_latency/ll_handle.hpp.
#pragma once

#include <memory>
#include <utility>

#include "epcomm/dispatch.hpp"
#include "epcomm/low_latency.hpp"

namespace epcomm {

struct HandleAccess {
  static DispatchHandle make(std::shared_ptr<const DispatchHandle::State> state) {
    return DispatchHandle(std::move(state));
  }
  static LlHandle make(std::shared_ptr<const LlHandle::State> state) { return LlHandle(std::move(state)); }
  // Null for an undefined handle.
  static const DispatchHandle::State* state(const DispatchHandle& h) { return h.state_.get(); }
  static const LlHandle::State* state(const LlHandle& h) { return h.state_.get(); }
};

}  // namespace epcomm
