#include "core/cuda_check.hpp"

namespace epcomm::detail {

void raise_cuda(cudaError_t status, const char* call, const char* file, int line) {
  raise(ErrorCategory::kCuda,
        concat(call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")"), file,
        line);
}

}  // namespace epcomm::detail
