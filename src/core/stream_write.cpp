#include "core/stream_write.hpp"

#include <cuda.h>

#include "core/check.hpp"
#include "core/cuda_check.hpp"

namespace epcomm {

namespace {

// cuStreamWriteValue64 and cuStreamWaitValue64 share this signature.
using ValueOp64 = CUresult (*)(CUstream, CUdeviceptr, cuuint64_t, unsigned int);

// NOTE: through the runtime's entry-point lookup: epcomm never links the driver library.
ValueOp64 driver_entry(const char* name) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  EPCOMM_CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &f, 12000, cudaEnableDefault, &found));
  EPCOMM_REQUIRE(found == cudaDriverEntryPointSuccess && f != nullptr, ErrorCategory::kCuda,
                 "the CUDA driver offers no ", name, " (stream memory operations)");
  return reinterpret_cast<ValueOp64>(f);
}

void check_value_op(CUresult status, const char* name) {
  EPCOMM_REQUIRE(status == CUDA_SUCCESS, ErrorCategory::kCuda, name, " failed with CUresult ",
                 static_cast<int>(status), " (stream memory operations unsupported on this GPU or driver?)");
}

}  // namespace

void stream_write_u64(cudaStream_t stream, std::uint64_t* addr, std::uint64_t value) {
  static const ValueOp64 write = driver_entry("cuStreamWriteValue64");
  check_value_op(write(reinterpret_cast<CUstream>(stream), reinterpret_cast<CUdeviceptr>(addr), value,
                       CU_STREAM_WRITE_VALUE_DEFAULT),
                 "cuStreamWriteValue64");
}

void stream_wait_at_least_u64(cudaStream_t stream, const std::uint64_t* addr, std::uint64_t value) {
  static const ValueOp64 wait = driver_entry("cuStreamWaitValue64");
  check_value_op(wait(reinterpret_cast<CUstream>(stream), reinterpret_cast<CUdeviceptr>(addr), value,
                      CU_STREAM_WAIT_VALUE_GEQ),
                 "cuStreamWaitValue64");
}

}  // namespace epcomm
