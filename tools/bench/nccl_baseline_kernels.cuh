// Device helpers of the NCCL baseline (what a user writes around all_to_all_v). Host-callable
// launchers with plain-data argument structs; the kernels live in nccl_baseline_kernels.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace epcomm::bench {

// Which ranks each token goes to: mask[r * T + t] = 1 when any of token t's experts lives on rank r.
struct RouteArgs {
  const int64_t* topk_idx = nullptr;  // [T, k], -1 = empty slot
  int64_t num_tokens = 0;             // T
  int num_topk = 0;                   // k
  int num_local_experts = 0;          // experts per rank
  int num_ranks = 0;                  // R
  int32_t* mask = nullptr;            // [R, T] 0/1 (rank-major: the order of the send buffer)
};
void launch_route(const RouteArgs& args, cudaStream_t stream);

// Exclusive prefix sum of `count` int32 values (CUB). With temp == nullptr, only sets temp_bytes.
void exclusive_scan(void* temp, std::size_t& temp_bytes, const int32_t* in, int32_t* out, int64_t count,
                    cudaStream_t stream);

// From the mask and its exclusive scan (the send position of every (rank, token)):
struct PositionArgs {
  const int32_t* mask = nullptr;     // [R, T]
  const int32_t* offsets = nullptr;  // [R, T] exclusive scan of mask
  int64_t num_tokens = 0;
  int num_ranks = 0;
  int32_t* send_pos = nullptr;     // [T, R]: row of (t, r) in the send buffer, -1 if not sent
  int32_t* src_token = nullptr;    // [R * T]: the token of each send row (the first sum(mask) used)
  int32_t* send_counts = nullptr;  // [R]: rows for each destination rank
};
void launch_positions(const PositionArgs& args, cudaStream_t stream);

// send row i = x row src_token[i] (payload_bytes) followed, for FP8, by its num_scales fp32 scales
// read through strides: scale (t, j) at scales[t * stride_token + j * stride_block].
struct GatherArgs {
  const uint8_t* x = nullptr;  // [T, payload_bytes]
  int64_t payload_bytes = 0;   // a multiple of 4
  const float* scales = nullptr;
  int num_scales = 0;  // 0 for BF16
  int64_t scale_stride_token = 0;
  int64_t scale_stride_block = 0;
  const int32_t* src_token = nullptr;  // [num_rows]
  int64_t num_rows = 0;
  uint8_t* send = nullptr;     // [num_rows, send_row_bytes]
  int64_t send_row_bytes = 0;  // payload_bytes + 4 * num_scales
};
void launch_gather(const GatherArgs& args, cudaStream_t stream);

// out[t] = sum over ranks r (ascending) with send_pos[t, r] >= 0 of back[send_pos[t, r]], float32
// accumulation, one BF16 rounding (a deterministic form of the scatter-add into token order).
struct CombineArgs {
  const uint16_t* back = nullptr;     // [rows, hidden] BF16, rows in send-buffer order
  const int32_t* send_pos = nullptr;  // [T, R]
  int64_t num_tokens = 0;
  int64_t hidden = 0;  // a multiple of 8
  int num_ranks = 0;
  uint16_t* out = nullptr;  // [T, hidden] BF16
};
void launch_combine(const CombineArgs& args, cudaStream_t stream);

}  // namespace epcomm::bench
