// How an epcomm call is ordered against the caller's work.
//
// A communication call runs on the buffer's own communication stream. It first waits on the
// caller's stream (or on `previous_event` when given), then, unless `async_finish` is set, makes
// the caller's stream wait for its completion before returning. With `async_finish` the call
// returns at once with an EventHandle the caller waits on when it needs the outputs.
// Exception, the same ordering for the caller: get_dispatch_layout, and a low-latency dispatch or
// combine without a receive hook, called with none of `previous_event`, `async_finish` and
// `allocate_on_comm_stream`, launch their one kernel on the caller's stream itself (no
// stream-to-stream waits: 1-3 us less host time a call; EPCOMM_CALLER_STREAM=0 turns this off).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>

#include "epcomm/export.hpp"

namespace epcomm {

// A recorded CUDA event shared by copies; empty when the call finished synchronously.
class EPCOMM_API EventHandle {
 public:
  EventHandle() = default;
  explicit EventHandle(std::shared_ptr<CUevent_st> event) : event_(std::move(event)) {}
  // Records a new event on `stream`.
  static EventHandle record(cudaStream_t stream);

  bool valid() const { return event_ != nullptr; }
  cudaEvent_t get() const { return event_.get(); }
  // Makes `stream` wait for the event (no-op when empty).
  void wait(cudaStream_t stream) const;
  // Blocks the host until the event completed (no-op when empty).
  void synchronize() const;

 private:
  std::shared_ptr<CUevent_st> event_;
};

struct CallOptions {
  cudaStream_t stream = nullptr;         // the caller's stream (nullptr: the legacy default stream)
  EventHandle previous_event{};          // when valid, wait on it instead of on `stream`
  bool async_finish = false;             // return an event instead of joining `stream`
  bool allocate_on_comm_stream = false;  // outputs allocated on the communication stream
};

}  // namespace epcomm
