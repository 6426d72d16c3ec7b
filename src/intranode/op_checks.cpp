#include "intranode/op_checks.hpp"

#include "core/check.hpp"
#include "core/tensor_checks.hpp"

namespace epcomm::checks {

void check_experts(int num_experts, int num_ranks) {
  EPCOMM_CHECK_ARG(num_experts > 0, "num_experts: expected > 0, got ", num_experts);
  EPCOMM_CHECK_ARG(num_experts % num_ranks == 0, "num_experts: expected a multiple of the number of ranks (",
                   num_ranks, "), got ", num_experts);
}

void check_layout_args(const Tensor& topk_idx, int num_experts, int num_ranks) {
  check_experts(num_experts, num_ranks);
  expect_dtype(topk_idx, "topk_idx", {DType::kI64, DType::kI32});
  expect_shape(topk_idx, "topk_idx", {kAny, kAny});
  expect_contiguous(topk_idx, "topk_idx");
  const std::int64_t k = topk_idx.size(1);
  EPCOMM_CHECK_ARG(k >= 1 && k <= kMaxTopk, "topk_idx: expected 1 to ", kMaxTopk, " columns (top-k), got ",
                   k);
}

void check_hidden(std::int64_t hidden, DType dtype, const char* name) {
  // The combine reducers number a row's staged chunks in 10 bits (ht_combine.cu).
  EPCOMM_CHECK_ARG(hidden > 0 && hidden <= kMaxHidden, name, ": expected a hidden size of 1 to ", kMaxHidden,
                   ", got ", hidden);
  const std::int64_t row_bytes = hidden * static_cast<std::int64_t>(dtype_size(dtype));
  EPCOMM_CHECK_ARG(row_bytes % 16 == 0, name, ": expected a hidden size whose rows are a multiple of ",
                   "16 bytes, got hidden ", hidden, " of ", to_string(dtype), " (", row_bytes, " bytes)");
}

}  // namespace epcomm::checks

namespace epcomm::checks {

namespace {

void check_handle(const DispatchHandle& h, int num_ranks) {
  EPCOMM_CHECK_ARG(h.defined(), "handle: expected the handle of a previous dispatch, got an empty one");
  EPCOMM_CHECK_ARG(h.num_ranks() == num_ranks, "handle: made for ", h.num_ranks(), " ranks, this buffer has ",
                   num_ranks);
}
}  // namespace

void require_high_throughput_buffer(bool low_latency_buffer, const char* op) {
  EPCOMM_REQUIRE(!low_latency_buffer, ::epcomm::ErrorCategory::kUnsupported, op,
                 ": this Buffer was made for low-latency mode (its workspace holds the low-latency state); "
                 "make a separate Buffer without LowLatencyOptions for high-throughput calls");
}

DispatchShape check_dispatch_args(const DispatchArgs& a, int num_ranks) {
  DispatchShape shape;
  expect_dtype(a.x, "x", {DType::kBF16, DType::kFP8E4M3});
  expect_shape(a.x, "x", {kAny, kAny});
  expect_contiguous(a.x, "x");
  expect_aligned(a.x, "x", 16);
  shape.num_tokens = a.x.size(0);
  shape.hidden = a.x.size(1);
  shape.fp8 = a.x.dtype == DType::kFP8E4M3;
  check_hidden(shape.hidden, a.x.dtype, "x");
  shape.row_bytes = shape.hidden * static_cast<std::int64_t>(dtype_size(a.x.dtype));
  const std::int64_t T = shape.num_tokens;
  if (shape.fp8) {
    EPCOMM_CHECK_ARG(shape.hidden % kFp8ScaleBlock == 0,
                     "x: FP8 rows need a hidden size that is a multiple of ", kFp8ScaleBlock, ", got ",
                     shape.hidden);
    shape.num_scales = static_cast<int>(shape.hidden / kFp8ScaleBlock);
    expect_dtype(a.x_scales, "x_scales", {DType::kF32});
    expect_shape(a.x_scales, "x_scales", {T, shape.num_scales});
  } else {
    EPCOMM_CHECK_ARG(!a.x_scales.defined(), "x_scales: only FP8 x carries scales, but x is ",
                     to_string(a.x.dtype));
  }
  if (a.topk_idx.defined()) {
    expect_dtype(a.topk_idx, "topk_idx", {DType::kI64, DType::kI32});
    expect_shape(a.topk_idx, "topk_idx", {T, kAny});
    expect_contiguous(a.topk_idx, "topk_idx");
    shape.num_topk = static_cast<int>(a.topk_idx.size(1));
    EPCOMM_CHECK_ARG(shape.num_topk >= 1 && shape.num_topk <= kMaxTopk, "topk_idx: expected 1 to ", kMaxTopk,
                     " columns, got ", shape.num_topk);
    shape.idx_bytes = static_cast<int>(dtype_size(a.topk_idx.dtype));
    expect_dtype(a.topk_weights, "topk_weights", {DType::kF32});
    expect_shape(a.topk_weights, "topk_weights", {T, shape.num_topk});
    expect_contiguous(a.topk_weights, "topk_weights");
  } else {
    EPCOMM_CHECK_ARG(!a.topk_weights.defined(), "topk_weights: given without topk_idx");
  }
  EPCOMM_CHECK_ARG(a.expert_alignment >= 1, "expert_alignment: expected >= 1, got ", a.expert_alignment);
  EPCOMM_CHECK_ARG(a.num_worst_tokens >= 0, "num_worst_tokens: expected >= 0, got ", a.num_worst_tokens);
  if (a.handle != nullptr) {
    check_handle(*a.handle, num_ranks);
    EPCOMM_CHECK_ARG(a.handle->num_tokens() == T, "x: the handle routes ", a.handle->num_tokens(),
                     " tokens, x has ", T);
    return shape;
  }
  if (derives_layout(a)) {
    // The layout derived in the dispatch (DispatchArgs::num_experts).
    EPCOMM_CHECK_ARG(a.topk_idx.defined(),
                     "topk_idx: required without a handle (to derive the layout) or the layout tensors");
    EPCOMM_CHECK_ARG(a.num_experts >= 1 && a.num_experts <= (1 << 30),
                     "num_experts: expected 1 to 2^30 when the layout tensors are not given, got ",
                     a.num_experts);
    check_experts(a.num_experts, num_ranks);
    shape.num_experts = a.num_experts;
    shape.derive_layout = true;
    return shape;
  }
  expect_dtype(a.num_tokens_per_rank, "num_tokens_per_rank", {DType::kI32});
  expect_shape(a.num_tokens_per_rank, "num_tokens_per_rank", {num_ranks});
  expect_dtype(a.is_token_in_rank, "is_token_in_rank", {DType::kBool});
  expect_shape(a.is_token_in_rank, "is_token_in_rank", {T, num_ranks});
  expect_contiguous(a.is_token_in_rank, "is_token_in_rank");
  expect_dtype(a.num_tokens_per_expert, "num_tokens_per_expert", {DType::kI32});
  expect_shape(a.num_tokens_per_expert, "num_tokens_per_expert", {kAny});
  expect_contiguous(a.num_tokens_per_expert, "num_tokens_per_expert");
  const std::int64_t E = a.num_tokens_per_expert.size(0);
  EPCOMM_CHECK_ARG(E <= (1 << 30), "num_tokens_per_expert: too many experts (", E, ")");
  check_experts(static_cast<int>(E), num_ranks);
  EPCOMM_CHECK_ARG(a.num_experts == 0 || a.num_experts == E, "num_experts: ", a.num_experts,
                   ", but num_tokens_per_expert has ", E, " entries");
  shape.num_experts = static_cast<int>(E);
  return shape;
}

namespace {

// Throws when the memory `t` spans (non-negative strides) meets [begin, begin + bytes).
void expect_outside(const Tensor& t, const char* name, const void* begin, std::size_t bytes) {
  if (!t.defined() || t.numel() == 0 || begin == nullptr) return;
  // In integers, not pointers: the span of any strides (even ones that wrap the address space) is
  // compared without undefined behaviour; a span that does not fit 64 bits is refused.
  std::uint64_t last = 0;  // the last element's offset, in elements
  bool fits = true;
  for (int d = 0; d < t.ndim && d < Tensor::kMaxDims; ++d) {
    const std::int64_t stride = t.stride[static_cast<std::size_t>(d)];
    EPCOMM_CHECK_ARG(stride >= 0, name, ": expected non-negative strides, got ", stride, " in dimension ", d);
    std::uint64_t step = 0;
    fits = fits && !__builtin_mul_overflow(static_cast<std::uint64_t>(t.size(d) - 1),
                                           static_cast<std::uint64_t>(stride), &step) &&
           !__builtin_add_overflow(last, step, &last);
  }
  std::uint64_t span = 0;
  fits = fits && !__builtin_mul_overflow(last + 1, static_cast<std::uint64_t>(dtype_size(t.dtype)), &span);
  const auto lo = reinterpret_cast<std::uintptr_t>(t.data);
  std::uint64_t hi = 0;
  fits = fits && !__builtin_add_overflow(static_cast<std::uint64_t>(lo), span, &hi);
  EPCOMM_CHECK_ARG(fits, name, ": its strides span more than the address space (", t.describe(), ")");
  const auto r0 = reinterpret_cast<std::uintptr_t>(begin);
  EPCOMM_CHECK_ARG(hi <= r0 || lo >= r0 + bytes, name,
                   ": lies in this Buffer's NVLink region, which the operation overwrites (a zero-copy "
                   "dispatch output?); copy it out first");
}

}  // namespace

void check_inputs_outside_region(const DispatchArgs& a, const void* region, std::size_t region_bytes) {
  expect_outside(a.x, "x", region, region_bytes);
  expect_outside(a.x_scales, "x_scales", region, region_bytes);
  expect_outside(a.topk_idx, "topk_idx", region, region_bytes);
  expect_outside(a.topk_weights, "topk_weights", region, region_bytes);
}

void check_inputs_outside_region(const CombineArgs& a, const void* region, std::size_t region_bytes) {
  expect_outside(a.x, "x", region, region_bytes);
  expect_outside(a.topk_weights, "topk_weights", region, region_bytes);
  expect_outside(a.bias0, "bias0", region, region_bytes);
  expect_outside(a.bias1, "bias1", region, region_bytes);
}

CombineShape check_combine_args(const CombineArgs& a, int num_ranks) {
  EPCOMM_CHECK_ARG(a.handle != nullptr, "handle: combine needs the handle of the dispatch it reverses");
  check_handle(*a.handle, num_ranks);
  CombineShape shape;
  const DispatchHandle& h = *a.handle;
  expect_dtype(a.x, "x", {DType::kBF16});
  expect_shape(a.x, "x", {h.num_rows(), kAny});
  expect_contiguous(a.x, "x");
  expect_aligned(a.x, "x", 16);
  shape.hidden = a.x.size(1);
  shape.num_tokens = h.num_tokens();
  check_hidden(shape.hidden, DType::kBF16, "x");
  if (a.topk_weights.defined()) {
    expect_dtype(a.topk_weights, "topk_weights", {DType::kF32});
    expect_shape(a.topk_weights, "topk_weights", {h.num_rows(), kAny});
    expect_contiguous(a.topk_weights, "topk_weights");
    shape.num_topk = static_cast<int>(a.topk_weights.size(1));
    EPCOMM_CHECK_ARG(shape.num_topk >= 1 && shape.num_topk <= kMaxTopk, "topk_weights: expected 1 to ",
                     kMaxTopk, " columns, got ", shape.num_topk);
  }
  const char* names[2] = {"bias0", "bias1"};
  const Tensor* biases[2] = {&a.bias0, &a.bias1};
  for (int i = 0; i < 2; ++i) {
    if (!biases[i]->defined()) continue;
    expect_dtype(*biases[i], names[i], {DType::kBF16});
    expect_shape(*biases[i], names[i], {h.num_tokens(), shape.hidden});
    expect_contiguous(*biases[i], names[i]);
    expect_aligned(*biases[i], names[i], 16);
  }
  return shape;
}

}  // namespace epcomm::checks
