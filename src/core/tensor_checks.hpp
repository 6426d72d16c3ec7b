// Argument checks on tensor views: each raises epcomm::Error (invalid argument) whose message names
// the argument, what was expected and what was given. Pure host code.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "epcomm/types.hpp"

namespace epcomm::checks {

inline constexpr std::int64_t kAny = -1;  // wildcard extent in expect_shape

void expect_defined(const Tensor& t, const char* name);
void expect_dtype(const Tensor& t, const char* name, std::initializer_list<DType> allowed);
// Extents equal to kAny match anything; the number of dimensions must match.
void expect_shape(const Tensor& t, const char* name, std::initializer_list<std::int64_t> shape);
void expect_contiguous(const Tensor& t, const char* name);
// 2-D rows whose last dimension is dense (stride 1) and whose rows are 16-byte aligned.
void expect_dense_rows(const Tensor& t, const char* name);
void expect_aligned(const Tensor& t, const char* name, std::size_t alignment);

}  // namespace epcomm::checks
