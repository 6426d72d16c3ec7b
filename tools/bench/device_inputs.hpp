// One rank's workload inputs on its GPU, as the ops read them.
#pragma once

#include <cstdint>

#include "bench/workload.hpp"
#include "core/cuda_raii.hpp"

namespace epcomm::bench {

struct DeviceInputs {
  int64_t num_tokens = 0;  // T
  int64_t hidden = 0;
  int num_topk = 0;
  int num_scales = 0;              // hidden / 128
  DeviceBuffer x_bf16;             // [T, hidden] BF16
  DeviceBuffer x_fp8;              // [T, hidden] E4M3
  DeviceBuffer scales;             // fp32, column-major: [hidden/128, T] physically
  int64_t scale_stride_token = 0;  // in floats: 1
  int64_t scale_stride_block = 0;  // in floats: T
  DeviceBuffer topk_idx;           // [T, k] int64, -1 for an empty slot
  DeviceBuffer topk_weights;       // [T, k] float32
};

// Copies the inputs to the current device (synchronously).
DeviceInputs upload_inputs(const RankInputs& inputs);

}  // namespace epcomm::bench
