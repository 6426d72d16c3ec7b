// Data types and non-owning tensor views. The core speaks raw device pointers with a shape, a
// dtype and strides; frameworks (PyTorch, JAX, C++ engines) plug in by filling these in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "epcomm/export.hpp"

namespace epcomm {

enum class DType : std::uint8_t {
  kBF16,     // bfloat16
  kFP8E4M3,  // float8 e4m3 (finite-saturating)
  kF32,
  kI32,
  kI64,
  kBool,  // one byte, 0 or 1
  kU8,
};

EPCOMM_API std::size_t dtype_size(DType dtype) noexcept;
EPCOMM_API const char* to_string(DType dtype) noexcept;

// A view of up to 4 dimensions of memory owned elsewhere. Strides are in elements.
struct EPCOMM_API Tensor {
  static constexpr int kMaxDims = 4;

  void* data = nullptr;
  DType dtype = DType::kU8;
  int ndim = 0;
  std::array<std::int64_t, kMaxDims> shape{};
  std::array<std::int64_t, kMaxDims> stride{};

  // A contiguous (row-major) view.
  static Tensor contiguous(void* data, DType dtype, std::initializer_list<std::int64_t> shape);
  // A view with explicit strides (elements).
  static Tensor strided(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
                        std::initializer_list<std::int64_t> stride);

  bool defined() const { return ndim > 0; }
  std::int64_t size(int dim) const { return shape[static_cast<std::size_t>(dim)]; }
  std::int64_t numel() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  // "[4096, 8] int64" for error messages.
  std::string describe() const;
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

}  // namespace epcomm
