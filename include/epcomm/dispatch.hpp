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
#pragma once

#include <cstdint>
#include <vector>

#include "epcomm/config.hpp"
#include "epcomm/device_tensor.hpp"
#include "epcomm/stream.hpp"
#include "epcomm/types.hpp"

namespace epcomm {

// Everything combine and a cached dispatch need to retrace one dispatch's route. Device tensors
// are owned; copies share them.
struct DispatchHandle {
  int num_ranks = 0;
  int num_channels = 0;               // sender warps (channels) of the dispatch that made it
  int copy_chunks = 0;                // copy-engine dispatch (EPCOMM_HT_DISPATCH_CE): its chunks; else 0
  std::int64_t num_tokens = 0;        // tokens this rank sent from
  std::int64_t num_recv_tokens = -1;  // rows received (host value; -1 in worst-case mode)
  std::int64_t num_rows = 0;          // rows of the outputs (num_worst_tokens in worst-case mode)
  int num_local_experts = 0;
  int expert_alignment = 1;
  DeviceTensor send_slot;         // [T, R] int32: index of token t among this rank's rows to r, or -1
  DeviceTensor count_matrix;      // [R, R] int32: rows rank s sends to rank d
  DeviceTensor recv_chunk_start;  // [R, C] int32: first row on this rank from (source s, channel c)
  DeviceTensor recv_chunk_count;  // [R, C] int32: rows on this rank from (source s, channel c)
  DeviceTensor recv_src_idx;      // [num_rows] int32: each row's token index on its source rank
  DeviceTensor num_recv_dev;      // [1] int32: rows received, on the device
  DeviceTensor num_recv_tokens_per_expert;      // [E/R] int32 on the device (aligned counts)
  std::vector<std::int32_t> count_matrix_host;  // [R * R]; empty in worst-case mode
  std::vector<std::int32_t> send_prefix_host;   // copy-engine dispatch: [R, copy_chunks + 1], this
                                                // rank's rows to each rank before each chunk
  bool defined() const { return num_ranks > 0; }
};

struct DispatchArgs {
  Tensor x;             // [T, hidden] bfloat16, or float8_e4m3 with x_scales
  Tensor x_scales;      // FP8 only: [T, hidden/128] float32, any strides (column-major is common)
  Tensor topk_idx;      // [T, k] int64/int32, or none (then no recv_topk_* outputs)
  Tensor topk_weights;  // [T, k] float32; required with topk_idx
  // From get_dispatch_layout; not needed with `handle`.
  Tensor num_tokens_per_rank;              // [R] int32
  Tensor is_token_in_rank;                 // [T, R] bool
  Tensor num_tokens_per_expert;            // [E] int32
  const DispatchHandle* handle = nullptr;  // cached dispatch: same routing, new x
  int expert_alignment = 1;
  std::int64_t num_worst_tokens = 0;  // > 0: no host synchronisation; outputs have this many rows
  // Zero-copy outputs: recv_x, recv_x_scales, recv_topk_idx, recv_topk_weights and the handle's
  // recv_src_idx are views of the rows where they arrive in this Buffer's NVLink region, instead of
  // fresh tensors they are copied into; this saves the copy (a read and a write of every received
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
  // worst-case mode, where only handle.num_recv_tokens_per_expert on the device is filled).
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
