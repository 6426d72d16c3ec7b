#include "runtime/cuda_check.hpp"

namespace epcomm::detail {

void raise_cuda(cudaError_t status, const char* call, const char* file, int line) {
  raise(ErrorCategory::kCuda,
        concat(call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")"), file,
        line);
}

void raise_cu(CUresult status, const char* call, const char* file, int line) {
  const char* name = nullptr;
  const char* text = nullptr;
  cuGetErrorName(status, &name);
  cuGetErrorString(status, &text);
  raise(ErrorCategory::kCuda,
        concat(call, " failed: ", name ? name : "CUresult ", name ? "" : std::to_string(status), " (",
               text ? text : "no description", ")"),
        file, line);
}

}  // namespace epcomm::detail
