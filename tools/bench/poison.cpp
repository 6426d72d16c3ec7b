#include "bench/poison.hpp"

#include "bench/require.hpp"

namespace epcomm::bench {

std::size_t view_span_bytes(std::span<const int64_t> shape, std::span<const int64_t> stride,
                            std::size_t element_bytes) {
  BENCH_CHECK_ARG(shape.size() == stride.size(), "view_span_bytes: ", shape.size(), " dimensions but ",
                  stride.size(), " strides");
  if (shape.empty()) return 0;
  int64_t last = 0;  // element offset of the last element
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0) return 0;
    BENCH_CHECK_ARG(stride[d] >= 0, "view_span_bytes: stride ", d, " is negative (", stride[d], ")");
    last += (shape[d] - 1) * stride[d];
  }
  return static_cast<std::size_t>(last + 1) * element_bytes;
}

}  // namespace epcomm::bench
