// One rank's workload inputs on its GPU, as the ops read them: the live buffers, and both input
// sets (the timed calls' and the checked call's, bench/workload.hpp InputSet) kept beside them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "bench/cuda.hpp"
#include "bench/workload.hpp"

namespace epcomm::bench {

// The tensors of one input set on the device.
struct DevicePayload {
  DeviceBuffer x_bf16;        // [T, hidden] BF16
  DeviceBuffer x_fp8;         // [T, hidden] E4M3
  DeviceBuffer scales;        // fp32, column-major: [hidden/128, T] physically
  DeviceBuffer topk_idx;      // [T, k] int64, -1 for an empty slot
  DeviceBuffer topk_weights;  // [T, k] float32
};

struct DeviceInputs {
  int64_t num_tokens = 0;  // T
  int64_t hidden = 0;
  int num_topk = 0;
  int num_scales = 0;              // hidden / 128
  int64_t scale_stride_token = 0;  // in floats: 1
  int64_t scale_stride_block = 0;  // in floats: T
  // NOTE: ops keep these addresses (views, captured graphs); load() changes the contents only.
  DevicePayload live;
  InputSet loaded = InputSet::kTimed;  // the set `live` holds
  DevicePayload timed;
  DevicePayload check;

  // Copies `set` into the live buffers (device to device) and waits for the copy.
  void load(InputSet set, cudaStream_t stream);
};

// Copies both sets to the current device (synchronously); `live` starts with the timed set. Both
// must have the same shapes (the same workload).
DeviceInputs upload_inputs(const RankInputs& timed, const RankInputs& check);

}  // namespace epcomm::bench
