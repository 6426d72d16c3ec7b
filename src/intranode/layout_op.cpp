// Buffer::get_dispatch_layout: argument checks, output allocation, launch.
#include "intranode/layout_args.hpp"
#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "intranode/op_checks.hpp"
#include "core/tensor_checks.hpp"

namespace epcomm {

DispatchLayout Buffer::get_dispatch_layout(const Tensor& topk_idx, int num_experts,
                                           const CallOptions& options) {
  check_status();
  Impl& m = *impl_;
  const int R = m.num_ranks();
  const int G = m.domains.ranks_per_domain;
  checks::check_layout_args(topk_idx, num_experts, R);
  const std::int64_t T = topk_idx.size(0);

  CommScope scope(m, options, /*direct=*/m.on_caller_stream);
  DispatchLayout out;
  const cudaStream_t s = scope.alloc_stream();
  // One allocation, the three counts first: one memset clears them.
  std::vector<DeviceTensor> outputs = DeviceTensor::empty_together(
      m.allocator,
      {Tensor::contiguous(nullptr, DType::kI32, {R}), Tensor::contiguous(nullptr, DType::kI32, {R / G}),
       Tensor::contiguous(nullptr, DType::kI32, {num_experts}),
       Tensor::contiguous(nullptr, DType::kBool, {T, R})},
      s);
  out.num_tokens_per_rank = outputs[0];
  out.num_tokens_per_domain = outputs[1];
  out.num_tokens_per_expert = outputs[2];
  out.is_token_in_rank = outputs[3];
  scope.allocations_ready();
  auto* const counts_begin = static_cast<char*>(out.num_tokens_per_rank.data());
  auto* const counts_end =
      static_cast<char*>(out.num_tokens_per_expert.data()) + sizeof(std::int32_t) * num_experts;
  EPCOMM_CUDA_CHECK(
      cudaMemsetAsync(counts_begin, 0, static_cast<std::size_t>(counts_end - counts_begin), scope.comm()));

  LayoutArgs args = layout_inputs(topk_idx, num_experts, R, G, m.view);
  args.num_tokens_per_rank = static_cast<std::int32_t*>(out.num_tokens_per_rank.data());
  args.num_tokens_per_domain = static_cast<std::int32_t*>(out.num_tokens_per_domain.data());
  args.num_tokens_per_expert = static_cast<std::int32_t*>(out.num_tokens_per_expert.data());
  args.is_token_in_rank = static_cast<bool*>(out.is_token_in_rank.data());
  m.timer.begin(scope.comm(), "layout");
  launch_dispatch_layout(args, scope.comm());
  m.timer.end(scope.comm());
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
