// High-throughput dispatch and combine within one NVLink domain (SPEC "High-throughput dispatch",
// "High-throughput combine"): the training and prefill path.
//
//   auto layout = buffer.get_dispatch_layout(topk_idx, num_experts);
//   DispatchArgs d{.x = x, .topk_idx = topk_idx, .topk_weights = w,
//                  .num_tokens_per_rank = layout.num_tokens_per_rank,
//                  .is_token_in_rank = layout.is_token_in_rank,
//                  .num_tokens_per_expert = layout.num_tokens_per_expert};
//   DispatchResult r = buffer.dispatch(d);
//   ... experts compute y from r.recv_x (rows in r's order) ...
//   CombineResult c = buffer.combine({.x = y, .handle = &r.handle});
//
// Or, without the layout call: DispatchArgs{.x = x, .topk_idx = topk_idx, .topk_weights = w,
// .num_experts = E}.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "epcomm/config.hpp"
#include "epcomm/device_tensor.hpp"
#include "epcomm/export.hpp"
#include "epcomm/stream.hpp"
#include "epcomm/types.hpp"

namespace epcomm {

// Everything combine and a cached dispatch need to retrace one dispatch's route. Opaque: keep it
// and pass it back (DispatchArgs::handle, CombineArgs::handle). Copies share its (immutable) state,
// device tensors included; it stays valid as long as any copy lives, also after the Buffer's next
// calls (unlike zero-copy outputs).
class EPCOMM_API DispatchHandle {
 public:
  struct State;  // internal
  DispatchHandle() = default;

  bool defined() const { return state_ != nullptr; }
  int num_ranks() const;                 // ranks of the group that made it
  int num_local_experts() const;         // experts per rank (E/R)
  std::int64_t num_tokens() const;       // tokens this rank dispatched from
  std::int64_t num_rows() const;         // rows of the outputs (num_worst_tokens in worst-case mode)
  // Rows received, as the host learned it; -1 in worst-case mode (see num_recv_tokens_device()).
  std::int64_t num_recv_tokens() const;
  // [1] int32 on the device: rows received (filled in every mode; the count in worst-case mode).
  Tensor num_recv_tokens_device() const;
  // [E/R] int32 on the device: rows selecting each local expert, rounded up to expert_alignment.
  Tensor num_recv_tokens_per_expert_device() const;

 private:
  friend struct HandleAccess;
  explicit DispatchHandle(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

struct DispatchArgs {
  Tensor x;             // [T, hidden] bfloat16, or float8_e4m3 with x_scales
  Tensor x_scales;      // FP8 only: [T, hidden/128] float32, any strides (column-major is common)
  Tensor topk_idx;      // [T, k] int64/int32, or none (then no recv_topk_* outputs)
  Tensor topk_weights;  // [T, k] float32; required with topk_idx
  // From get_dispatch_layout; not needed with `handle`. Or none of the three, with topk_idx and
  // num_experts: dispatch then derives them itself, in the launch of its count exchange (one
  // kernel before the rows move instead of two: the lowest fixed cost).
  Tensor num_tokens_per_rank;              // [R] int32
  Tensor is_token_in_rank;                 // [T, R] bool
  Tensor num_tokens_per_expert;            // [E] int32
  int num_experts = 0;                     // E, when the three above are not given
  const DispatchHandle* handle = nullptr;  // cached dispatch: same routing, new x
  int expert_alignment = 1;
  std::int64_t num_worst_tokens = 0;  // > 0: no host synchronisation; outputs have this many rows
  // Zero-copy outputs: recv_x, recv_x_scales, recv_topk_idx and recv_topk_weights are views of the
  // rows where they arrive in this Buffer's NVLink region, instead of fresh tensors they are copied into; this saves the copy (a read and a write of every received
  // row). NOTE the lifetime: the views stay valid until the next dispatch or combine on this
  // Buffer (both reuse the region); copy out what must live longer. Combine refuses inputs that
  // lie in the region (copy them out first). The handle itself stays valid as usual.
  bool zero_copy = false;
  Config config{};
};

struct DispatchResult {
  DeviceTensor recv_x;             // [rows, hidden], dtype of x; ordered by source rank, then token
  DeviceTensor recv_x_scales;      // FP8: [rows, hidden/128] float32, row-major
  DeviceTensor recv_topk_idx;      // [rows, k]: local expert id on this rank, or -1
  DeviceTensor recv_topk_weights;  // [rows, k]: 0 where recv_topk_idx is -1
  // Rows selecting each local expert, each rounded up to expert_alignment. Host copy (empty in
  // worst-case mode: see handle.num_recv_tokens_per_expert_device()).
  std::vector<int> num_recv_tokens_per_expert;
  DispatchHandle handle;
  EventHandle event;
};

struct CombineArgs {
  Tensor x;             // [rows, hidden] bfloat16, rows in the order dispatch produced
  Tensor topk_weights;  // [rows, k] float32 (the received weights), or none
  Tensor bias0, bias1;  // [T, hidden] bfloat16 on the token's owner, or none
  const DispatchHandle* handle = nullptr;
  Config config{};
};

struct CombineResult {
  DeviceTensor x;             // [T, hidden] bfloat16: bias0 + bias1 + sum over receiving ranks
  DeviceTensor topk_weights;  // [T, k] float32 when topk_weights was given
  EventHandle event;
};

}  // namespace epcomm
