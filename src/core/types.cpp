#include "epcomm/types.hpp"

#include <sstream>

#include "core/check.hpp"

namespace epcomm {

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::kBF16:
      return 2;
    case DType::kFP8E4M3:
      return 1;
    case DType::kF32:
      return 4;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
    case DType::kBool:
      return 1;
    case DType::kU8:
      return 1;
  }
  return 0;
}

const char* to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kFP8E4M3:
      return "float8_e4m3";
    case DType::kF32:
      return "float32";
    case DType::kI32:
      return "int32";
    case DType::kI64:
      return "int64";
    case DType::kBool:
      return "bool";
    case DType::kU8:
      return "uint8";
  }
  return "unknown";
}

Tensor Tensor::contiguous(void* data, DType dtype, std::initializer_list<std::int64_t> shape) {
  EPCOMM_CHECK_ARG(shape.size() >= 1 && shape.size() <= kMaxDims, "Tensor: expected 1 to ", kMaxDims,
                   " dimensions, got ", shape.size());
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), t.shape.begin());
  std::int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.stride[static_cast<std::size_t>(d)] = stride;
    // A product past int64 leaves the outer strides saturated; checks::expect_defined refuses
    // such a view by name before any use.
    if (__builtin_mul_overflow(stride, t.shape[static_cast<std::size_t>(d)], &stride)) stride = INT64_MAX;
  }
  return t;
}

Tensor Tensor::strided(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
                       std::initializer_list<std::int64_t> stride) {
  EPCOMM_CHECK_ARG(shape.size() == stride.size(), "Tensor: shape has ", shape.size(),
                   " dimensions but stride has ", stride.size());
  Tensor t = contiguous(data, dtype, shape);
  std::copy(stride.begin(), stride.end(), t.stride.begin());
  return t;
}

// NOTE: the methods below accept any field values (a caller's view is checked only later, by
// checks::expect_defined): they read at most kMaxDims dimensions and never overflow.
namespace {
int dims_of(const Tensor& t) { return t.ndim < 0 ? 0 : (t.ndim > Tensor::kMaxDims ? Tensor::kMaxDims : t.ndim); }
}  // namespace

std::int64_t Tensor::numel() const {
  if (ndim <= 0) return 0;
  std::int64_t n = 1;
  for (int d = 0; d < dims_of(*this); ++d) {
    // A negative size gives no elements; a product past int64 saturates (checks refuse both).
    if (shape[static_cast<std::size_t>(d)] < 0) return 0;
    if (__builtin_mul_overflow(n, shape[static_cast<std::size_t>(d)], &n)) n = INT64_MAX;
  }
  return n;
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (int d = dims_of(*this) - 1; d >= 0; --d) {
    const auto i = static_cast<std::size_t>(d);
    if (shape[i] != 1 && stride[i] != expected) return false;
    if (__builtin_mul_overflow(expected, shape[i], &expected)) return false;
  }
  return true;
}

std::string Tensor::describe() const {
  if (ndim == 0) return "undefined";
  std::ostringstream os;
  os << '[';
  for (int d = 0; d < dims_of(*this); ++d) os << (d ? ", " : "") << shape[static_cast<std::size_t>(d)];
  if (ndim > kMaxDims) os << ", ... (" << ndim << " dimensions)";
  os << "] " << to_string(dtype);
  if (!is_contiguous()) os << " (non-contiguous)";
  return os.str();
}

}  // namespace epcomm
