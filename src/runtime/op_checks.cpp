#include "runtime/op_checks.hpp"

#include "runtime/check.hpp"
#include "runtime/tensor_checks.hpp"

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
  EPCOMM_CHECK_ARG(k >= 1 && k <= kMaxTopk, "topk_idx: expected 1 to ", kMaxTopk, " columns (top-k), got ", k);
}

void check_hidden(std::int64_t hidden, DType dtype, const char* name) {
  const std::int64_t row_bytes = hidden * static_cast<std::int64_t>(dtype_size(dtype));
  EPCOMM_CHECK_ARG(hidden > 0 && row_bytes % 16 == 0, name, ": expected a hidden size whose rows are a multiple of ",
                   "16 bytes, got hidden ", hidden, " of ", to_string(dtype), " (", row_bytes, " bytes)");
}

}  // namespace epcomm::checks
