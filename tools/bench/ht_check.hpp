// The data check of high-throughput dispatch and combine rows, on host copies of the outputs.
// Plain C++ (no CUDA): the CPU tests feed it empty, short and poisoned outputs and see it fail.
//
// Every element count comes from the reference (compare.hpp): an output that is missing, empty or
// of another size fails with a message naming the tensor and both sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/compare.hpp"
#include "bench/expected.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {

// One dispatch's outputs as downloaded; a vector is empty when its tensor is undefined.
struct HtDispatchOutputs {
  int64_t num_recv_tokens = -1;          // the handle's host count
  std::vector<uint8_t> recv_x;           // [rows, row bytes]: BF16 hidden*2 bytes, FP8 hidden bytes
  std::vector<float> recv_x_scales;      // FP8: [rows, hidden/128] row-major
  std::vector<int64_t> recv_topk_idx;    // [rows, k]: local expert id or -1
  std::vector<float> recv_topk_weights;  // [rows, k]
};

struct HtDispatchCheck {
  std::string impl = "epcomm";  // names the row in messages
  bool fp8 = false;             // compare recv_x_scales too
  bool with_topk = true;        // compare recv_topk_idx and recv_topk_weights (the NCCL baseline has none)
};

// recv_x and the scales bit-exactly, top-k indices exactly, weights bit-exactly (they are moved).
Verdict check_ht_dispatch(const HtDispatchOutputs& got, const ref::HtRankOutput& want,
                          const HtDispatchCheck& how);

struct HtCombineOutputs {
  std::vector<uint16_t> x;          // [T, hidden] BF16
  std::vector<float> topk_weights;  // [T, k]
};

// Combined weights are sums of moved values: within this tolerance of the reference's float sums.
inline constexpr float kCombineWeightRtol = 1e-5f;
inline constexpr float kCombineWeightAtol = 1e-6f;

// x within the BF16 tolerance (compare_bf16); the weights too when with_topk_weights.
Verdict check_ht_combine(const HtCombineOutputs& got, const ExpectedHt& want, bool with_topk_weights,
                         const std::string& impl);

}  // namespace epcomm::bench
