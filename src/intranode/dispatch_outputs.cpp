// The outputs of a high-throughput dispatch (dispatch_outputs.hpp).
#include "intranode/dispatch_outputs.hpp"

#include <vector>

#include "transport/region_layout.hpp"

namespace epcomm {

OutputPointers region_pointers(void* region, const HtDispatchLayout& layout) {
  char* const data = RegionLayout::data(region);
  return {data + layout.x_offset, data + layout.scales_offset, data + layout.topk_offset,
          data + layout.weights_offset, data + layout.src_idx_offset};
}

// Fresh outputs of h.num_rows rows in one allocation: [x, src_idx, scales (FP8), topk_idx and
// weights (with top-k)]; returns where the kernel writes them.
OutputPointers allocate_outputs(Buffer::Impl& m, const DispatchArgs& a, const checks::DispatchShape& shape,
                                CommScope& scope, DispatchResult& out, DispatchHandle::State& h) {
  const std::int64_t rows = h.num_rows;
  std::vector<Tensor> layouts{Tensor::contiguous(nullptr, a.x.dtype, {rows, shape.hidden}),
                              Tensor::contiguous(nullptr, DType::kI32, {rows})};
  if (shape.fp8) layouts.push_back(Tensor::contiguous(nullptr, DType::kF32, {rows, shape.num_scales}));
  if (shape.num_topk > 0) {
    layouts.push_back(Tensor::contiguous(nullptr, a.topk_idx.dtype, {rows, shape.num_topk}));
    layouts.push_back(Tensor::contiguous(nullptr, DType::kF32, {rows, shape.num_topk}));
  }
  std::vector<DeviceTensor> outputs = DeviceTensor::empty_together(m.allocator, layouts, scope.alloc_stream());
  out.recv_x = outputs[0];
  h.recv_src_idx = outputs[1];
  std::size_t next = 2;
  if (shape.fp8) out.recv_x_scales = outputs[next++];
  if (shape.num_topk > 0) {
    out.recv_topk_idx = outputs[next++];
    out.recv_topk_weights = outputs[next++];
  }
  scope.allocations_ready();
  return {out.recv_x.data(), out.recv_x_scales.data(), out.recv_topk_idx.data(), out.recv_topk_weights.data(),
          h.recv_src_idx.data()};
}

void region_views(const DispatchArgs& a, const checks::DispatchShape& shape, const OutputPointers& dst,
                  DispatchResult& out, DispatchHandle::State& h) {
  const std::int64_t rows = h.num_rows;
  auto view = [&](void* at, DType dtype, std::initializer_list<std::int64_t> dims) {
    return DeviceTensor::borrowed(Tensor::contiguous(at, dtype, dims));
  };
  out.recv_x = view(dst.x, a.x.dtype, {rows, shape.hidden});
  if (shape.fp8) out.recv_x_scales = view(dst.scales, DType::kF32, {rows, shape.num_scales});
  if (shape.num_topk > 0) {
    out.recv_topk_idx = view(dst.topk, a.topk_idx.dtype, {rows, shape.num_topk});
    out.recv_topk_weights = view(dst.weights, DType::kF32, {rows, shape.num_topk});
  }
  h.recv_src_idx = view(dst.src_idx, DType::kI32, {rows});
}

}  // namespace epcomm
