// Low-latency dispatch and combine within one NVLink domain (SPEC "Low-latency dispatch",
// "Low-latency combine"): the decode path. No host synchronisation, no allocation: every call is
// capturable in a CUDA graph and replays correctly any number of times.
//
//   const LowLatencyOptions ll{.max_tokens_per_rank = 128, .hidden = 7168, .num_experts = 288};
//   BufferOptions options{.num_nvl_bytes = ll_region_bytes_hint(128, 7168, world, 288),
//                         .low_latency_mode = true};
//   Buffer buffer(bootstrap, options, ll);
//   LlDispatchResult d = buffer.low_latency_dispatch(x, topk_idx, {.use_fp8 = true});
//   ... experts compute y[nle, R*T, hidden] from d.recv_x (rows [0, recv_count[e]) of expert e) ...
//   LlCombineResult c = buffer.low_latency_combine(y, topk_idx, topk_weights, d.handle);
//
// Outputs are views of memory the Buffer owns (no allocation). NOTE the lifetime rule: dispatch
// outputs are double-buffered, so the results (and handle) of the LAST TWO dispatches stay valid;
// the third dispatch reuses the memory of the first. Likewise the outputs of the last two combines
// (combine outputs and dispatch outputs live apart). A combine given a handle whose memory was
// reused raises epcomm::Error. Under CUDA-graph replay a captured call writes, on every replay, the
// outputs it returned at capture time.
//
// Split phases (return_recv_hook): the call issues its sends and returns a `receive` callable that
// launches the receive on the call's stream; between the two no GPU compute unit is held. Call each
// receive exactly once, before the Buffer is destroyed; at most two split calls of a kind may await
// their receive (a third is refused), and a combine needs its dispatch received. A split zero-copy
// combine keeps its dispatch's outputs in use until its receive (a dispatch that would reuse them
// is refused). When capturing a CUDA graph, capture a call and its receive in the same graph.
//
// A Buffer made for low-latency mode keeps its low-latency state in the NVLink region: do not use
// the high-throughput operations on the same Buffer (they reuse that workspace).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "epcomm/export.hpp"
#include "epcomm/low_latency_limits.hpp"
#include "epcomm/stream.hpp"
#include "epcomm/types.hpp"

namespace epcomm {


// Fixed when the Buffer is made (the same on every rank): they size the region and the outputs.
struct LowLatencyOptions {
  std::int64_t max_tokens_per_rank = 0;  // T: tokens one rank may dispatch per call
  std::int64_t hidden = 0;               // channels per token, a multiple of 128, <= 8192
  int num_experts = 0;                   // E, a multiple of the number of ranks
  int max_topk = 8;                      // largest k of topk_idx, <= kLlMaxTopk
  // Blocks of every low-latency launch, at most one per SM; 0: one per SM of the device. Every rank
  // launches the smallest grid any rank asks for. EPCOMM_LL_BLOCKS overrides it when set.
  int num_blocks = 0;
};

// Bytes of BufferOptions::num_nvl_bytes low-latency mode needs for T tokens per rank, `hidden`
// channels, R ranks, E experts and k <= max_topk (the analogue of get_low_latency_rdma_size_hint;
// pass the max_topk of LowLatencyOptions, or leave the default, which fits any top-k).
EPCOMM_API std::int64_t ll_region_bytes_hint(std::int64_t max_tokens_per_rank, std::int64_t hidden,
                                             int num_ranks, int num_experts, int max_topk = kLlMaxTopk);

struct LlDispatchOptions {
  bool use_fp8 = true;            // cast BF16 to FP8 E4M3 in the kernel, one scale per 128 channels
  bool round_scale = false;       // FP8: scales rounded up to powers of two
  bool use_ue8m0 = false;         // FP8: scales stored as 8-bit exponents, four per int32 (needs round_scale)
  bool return_recv_hook = false;  // return after the sends; LlDispatchResult::receive completes
  // Optional [nle] int32: each call adds the rows received by each local expert (on the device).
  Tensor cumulative_local_expert_recv_stats{};
};

// What combine needs to route rows back. Opaque: keep it and pass it to low_latency_combine and
// get_next_low_latency_combine_buffer. Copies share its state; valid as long as the dispatch
// outputs are (see the lifetime rule above).
class EPCOMM_API LlHandle {
 public:
  struct State;  // internal
  LlHandle() = default;

  bool defined() const { return state_ != nullptr; }
  int num_ranks() const;             // ranks of the group that made it
  int num_local_experts() const;     // experts per rank (E/R)
  std::int64_t hidden() const;       // channels per token
  std::int64_t num_tokens() const;  // T_r: tokens this rank dispatched
  int num_topk() const;             // k of the dispatch's topk_idx

 private:
  friend struct HandleAccess;
  explicit LlHandle(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

struct LlDispatchResult {
  // [nle, R*T, hidden]: float8_e4m3 with use_fp8, else bfloat16. Rows [0, recv_count[e]) of expert
  // e are valid, grouped by source rank as layout_range says (today in source, token, slot order,
  // like the CPU reference; rely only on layout_range and src_info).
  Tensor recv_x;
  // FP8: [nle, R*T, hidden/128] float32 (scale_inv per 128 channels) with strides
  // (hidden/128 * R*T, 1, R*T): column-major in the last two dimensions, physically
  // [nle, hidden/128, R*T]. UE8M0: [nle, R*T, ceil(hidden/512)] int32 likewise, byte j of word w
  // the exponent of block 4w + j. Undefined for BF16.
  Tensor recv_scales;
  Tensor recv_count;    // [nle] int32: valid rows of each local expert
  Tensor layout_range;  // [nle, R] int64: (first row << 32) | rows, of each source rank
  Tensor src_info;      // [nle, R*T] int32: each row's token index on its source rank
  LlHandle handle;
  EventHandle event;              // valid with CallOptions::async_finish
  std::function<void()> receive;  // with return_recv_hook: completes the dispatch
};

struct LlCombineOptions {
  // y is the tensor get_next_low_latency_combine_buffer returned (checked). Combine reads y in
  // place either way (it never copies y), so this only selects and checks the buffer.
  bool zero_copy = false;
  bool return_recv_hook = false;  // return after the sends; LlCombineResult::receive completes
  // Optional: [T_r, hidden] bfloat16, contiguous, 16-byte aligned, on the Buffer's device, not
  // overlapping y. Combine writes its result there instead of into the Buffer's memory (a
  // framework's own tensor, with no copy after the call); LlCombineResult::out is then this tensor.
  Tensor out{};
};

struct LlCombineResult {
  // LlCombineOptions::out when given, else a view of the Buffer's memory.
  // [T_r, hidden] bfloat16: sum over k of topk_weights[t,k] * y of expert topk_idx[t,k], in float32:
  // each rank holding t's experts sums its slots (ascending), the partials are added in rank order,
  // one rounding (ref::ll_combine does the same operations).
  Tensor out;
  EventHandle event;
  std::function<void()> receive;
};

}  // namespace epcomm
