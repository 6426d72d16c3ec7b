#include "bench/device_inputs.hpp"

#include <vector>

#include "core/cuda_check.hpp"

namespace epcomm::bench {

namespace {

template <typename T>
DeviceBuffer upload(const std::vector<T>& host) {
  DeviceBuffer buffer(host.size() * sizeof(T));
  copy_to_device(buffer.get(), host.data(), buffer.bytes());
  return buffer;
}

}  // namespace

DeviceInputs upload_inputs(const RankInputs& inputs) {
  const ref::HtRankInput& bf16 = inputs.bf16;
  const ref::HtRankInput& fp8 = inputs.fp8;
  DeviceInputs d;
  d.num_tokens = bf16.num_tokens;
  d.hidden = bf16.row_bytes / 2;
  d.num_topk = bf16.num_topk;
  d.num_scales = fp8.num_scales;
  d.x_bf16 = upload(bf16.x);
  d.x_fp8 = upload(fp8.x);
  d.scales = upload(fp8.scales);
  d.scale_stride_token = fp8.scale_stride_token;
  d.scale_stride_block = fp8.scale_stride_block;
  d.topk_idx = upload(bf16.topk_idx);
  d.topk_weights = upload(bf16.topk_weights);
  return d;
}

}  // namespace epcomm::bench
