// Preconditions of low-latency mode, checked on the host before anything is launched. Pure host
// code (shapes, dtypes, strides, addresses and counters only), covered by CPU tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "epcomm/buffer.hpp"
#include "epcomm/low_latency.hpp"
#include "epcomm/types.hpp"
#include "low_latency/ll_args.hpp"
#include "low_latency/ll_handle.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {
struct LlState;  // low_latency/ll_state.hpp
}  // namespace epcomm

namespace epcomm::checks {

// Dynamic shared memory a low-latency kernel may ask for (low_latency/ll_args.hpp).

// BufferOptions::ll_transport, checked first by every Buffer constructor (before any collective
// step, so every rank refuses alike): a known value; kNvshmem only with low_latency_mode, in a
// program that links the NVSHMEM transport (`hooks`, from ll_nvshmem_hooks()), while no other
// owner holds NVSHMEM in this process.
void check_ll_transport(const BufferOptions& options, const LlNvshmemHooks* hooks);

// LowLatencyOptions for a group of num_ranks ranks.
void check_ll_options(const LowLatencyOptions& ll, int num_ranks);
// A Buffer for low-latency mode: the options above, low_latency_mode set, and (CUDA IPC transport)
// a region of at least ll_region_bytes_hint(...) bytes; with LlTransport::kNvshmem, or across
// `known_domains` > 1 NVLink domains (ll_requested_num_domains: known before any exchange), the
// workspace comes from the symmetric heap and num_nvl_bytes may be anything.
void check_ll_buffer(const BufferOptions& options, const LowLatencyOptions& ll, int num_ranks,
                     int known_domains);
// The low-latency state of a Buffer, or an error naming `op` when it was not made for that mode.
LlState& require_ll_state(LlState* state, const char* op);

struct LlDispatchShape {
  std::int64_t num_tokens = 0;  // T_r
  int num_topk = 0;
  int idx_bytes = 8;
};
LlDispatchShape check_ll_dispatch_args(const Tensor& x, const Tensor& topk_idx,
                                       const LlDispatchOptions& options, const LowLatencyOptions& ll,
                                       int num_ranks);

// Everything of a combine call that the host can check. `state` is the Buffer's low-latency state
// (the handle must come from it and still be alive), `next_zero_copy_y` the buffer
// get_next_low_latency_combine_buffer returns now.
void check_ll_combine_args(const Tensor& y, const Tensor& topk_idx, const Tensor& topk_weights,
                           const LlHandle& handle, const LlCombineOptions& options,
                           const LlState& state, int num_ranks, const void* next_zero_copy_y);
// The handle of a dispatch of this buffer (get_next_low_latency_combine_buffer and combine).
void check_ll_handle(const LlHandle& handle, const LlState& state, int num_ranks);

// The split call of `kind` (LlKind) that used output half `half` two calls ago must have been
// received (at most two operations of a kind in flight).
void check_not_in_flight(const LlState& state, int kind, int half);

// A dispatch into output half `half`: no split zero-copy combine that read that half's dispatch
// awaits its receive (pulled, its peers still read that dispatch's outputs).
void check_dispatch_outputs_free(const LlState& state, int half);

}  // namespace epcomm::checks
