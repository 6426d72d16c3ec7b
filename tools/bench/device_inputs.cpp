#include "bench/device_inputs.hpp"

#include <vector>

#include "bench/cuda.hpp"
#include "bench/require.hpp"

namespace epcomm::bench {

namespace {

template <typename T>
DeviceBuffer upload(const std::vector<T>& host) {
  DeviceBuffer buffer(host.size() * sizeof(T));
  copy_to_device(buffer.get(), host.data(), buffer.bytes());
  return buffer;
}

DevicePayload upload_payload(const RankInputs& in) {
  DevicePayload p;
  p.x_bf16 = upload(in.bf16.x);
  p.x_fp8 = upload(in.fp8.x);
  p.scales = upload(in.fp8.scales);
  p.topk_idx = upload(in.bf16.topk_idx);
  p.topk_weights = upload(in.bf16.topk_weights);
  return p;
}

void copy(DeviceBuffer& to, const DeviceBuffer& from, cudaStream_t stream) {
  BENCH_CHECK_ARG(to.bytes() == from.bytes(), "input sets differ in size: ", to.bytes(), " and ",
                  from.bytes(), " bytes");
  if (to.bytes() > 0)
    BENCH_CUDA(cudaMemcpyAsync(to.get(), from.get(), to.bytes(), cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

void DeviceInputs::load(InputSet set, cudaStream_t stream) {
  const DevicePayload& from = set == InputSet::kCheck ? check : timed;
  copy(live.x_bf16, from.x_bf16, stream);
  copy(live.x_fp8, from.x_fp8, stream);
  copy(live.scales, from.scales, stream);
  copy(live.topk_idx, from.topk_idx, stream);
  copy(live.topk_weights, from.topk_weights, stream);
  BENCH_CUDA(cudaStreamSynchronize(stream));
  loaded = set;
}

DeviceInputs upload_inputs(const RankInputs& timed, const RankInputs& check) {
  const ref::HtRankInput& bf16 = timed.bf16;
  const ref::HtRankInput& fp8 = timed.fp8;
  BENCH_CHECK_ARG(check.bf16.x.size() == bf16.x.size() && check.bf16.topk_idx.size() == bf16.topk_idx.size(),
                  "upload_inputs: the check set's shapes differ from the timed set's");
  DeviceInputs d;
  d.num_tokens = bf16.num_tokens;
  d.hidden = bf16.row_bytes / 2;
  d.num_topk = bf16.num_topk;
  d.num_scales = fp8.num_scales;
  d.scale_stride_token = fp8.scale_stride_token;
  d.scale_stride_block = fp8.scale_stride_block;
  d.live = upload_payload(timed);
  d.timed = upload_payload(timed);
  d.check = upload_payload(check);
  return d;
}

}  // namespace epcomm::bench
