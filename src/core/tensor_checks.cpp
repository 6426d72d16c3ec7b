#include "core/tensor_checks.hpp"

#include <cstdint>
#include <sstream>

#include "core/check.hpp"

namespace epcomm::checks {

namespace {
std::string list_dtypes(std::initializer_list<DType> allowed) {
  std::ostringstream os;
  bool first = true;
  for (DType d : allowed) {
    os << (first ? "" : " or ") << to_string(d);
    first = false;
  }
  return os.str();
}
}  // namespace

void expect_defined(const Tensor& t, const char* name) {
  EPCOMM_CHECK_ARG(t.defined(), name, ": expected a tensor, got none");
  // A well-formed view: at most kMaxDims dimensions, no negative size, a byte count that fits.
  EPCOMM_CHECK_ARG(t.ndim <= Tensor::kMaxDims, name, ": expected at most ", Tensor::kMaxDims,
                   " dimensions, got ", t.ndim);
  std::int64_t bytes = static_cast<std::int64_t>(dtype_size(t.dtype));
  for (int d = 0; d < t.ndim; ++d) {
    const std::int64_t extent = t.shape[static_cast<std::size_t>(d)];
    EPCOMM_CHECK_ARG(extent >= 0, name, ": expected non-negative sizes, got ", extent, " in dimension ", d);
    EPCOMM_CHECK_ARG(!__builtin_mul_overflow(bytes, extent, &bytes), name,
                     ": its size overflows 64-bit byte counts (", t.describe(), ")");
  }
}

void expect_dtype(const Tensor& t, const char* name, std::initializer_list<DType> allowed) {
  expect_defined(t, name);
  for (DType d : allowed)
    if (t.dtype == d) return;
  EPCOMM_THROW(ErrorCategory::kInvalidArgument, name, ": expected dtype ", list_dtypes(allowed), ", got ",
               to_string(t.dtype));
}

void expect_shape(const Tensor& t, const char* name, std::initializer_list<std::int64_t> shape) {
  expect_defined(t, name);
  bool ok = t.ndim == static_cast<int>(shape.size());
  int d = 0;
  for (std::int64_t extent : shape) {
    if (ok && extent != kAny && t.shape[static_cast<std::size_t>(d)] != extent) ok = false;
    ++d;
  }
  if (ok) return;
  std::ostringstream want;
  want << '[';
  d = 0;
  for (std::int64_t extent : shape) {
    want << (d++ ? ", " : "");
    if (extent == kAny)
      want << '*';
    else
      want << extent;
  }
  want << ']';
  EPCOMM_THROW(ErrorCategory::kInvalidArgument, name, ": expected shape ", want.str(), ", got ",
               t.describe());
}

void expect_contiguous(const Tensor& t, const char* name) {
  EPCOMM_CHECK_ARG(t.is_contiguous(), name, ": expected a contiguous tensor, got ", t.describe(),
                   " with strides (", t.stride[0], t.ndim > 1 ? ", ..." : "", ")");
}

void expect_aligned(const Tensor& t, const char* name, std::size_t alignment) {
  EPCOMM_CHECK_ARG(reinterpret_cast<std::uintptr_t>(t.data) % alignment == 0, name,
                   ": expected data aligned to ", alignment, " bytes, got address ", t.data);
}

void expect_dense_rows(const Tensor& t, const char* name) {
  expect_defined(t, name);
  EPCOMM_CHECK_ARG(t.ndim == 2, name, ": expected 2 dimensions, got ", t.describe());
  EPCOMM_CHECK_ARG(t.stride[1] == 1, name, ": expected the last dimension dense (stride 1), got stride ",
                   t.stride[1]);
  const std::size_t row_bytes = static_cast<std::size_t>(t.stride[0]) * dtype_size(t.dtype);
  EPCOMM_CHECK_ARG(t.shape[0] <= 1 || row_bytes % 16 == 0, name,
                   ": expected rows 16-byte aligned, got a row stride of ", row_bytes, " bytes");
  expect_aligned(t, name, 16);
}

}  // namespace epcomm::checks
