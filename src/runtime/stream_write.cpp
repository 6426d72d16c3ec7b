#include "runtime/stream_write.hpp"

#include <cuda.h>

#include "runtime/check.hpp"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

using WriteValue64 = CUresult (*)(CUstream, CUdeviceptr, cuuint64_t, unsigned int);

// NOTE: through the runtime's entry-point lookup: epcomm never links the driver library.
WriteValue64 write_value64() {
  static const WriteValue64 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    EPCOMM_CUDA_CHECK(
        cudaGetDriverEntryPointByVersion("cuStreamWriteValue64", &f, 12000, cudaEnableDefault, &found));
    EPCOMM_REQUIRE(found == cudaDriverEntryPointSuccess && f != nullptr, ErrorCategory::kCuda,
                   "the CUDA driver offers no cuStreamWriteValue64 (stream memory operations)");
    return reinterpret_cast<WriteValue64>(f);
  }();
  return fn;
}

}  // namespace

void stream_write_u64(cudaStream_t stream, std::uint64_t* addr, std::uint64_t value) {
  const CUresult status =
      write_value64()(reinterpret_cast<CUstream>(stream), reinterpret_cast<CUdeviceptr>(addr), value,
                      CU_STREAM_WRITE_VALUE_DEFAULT);
  EPCOMM_REQUIRE(status == CUDA_SUCCESS, ErrorCategory::kCuda, "cuStreamWriteValue64 failed with CUresult ",
                 static_cast<int>(status), " (stream memory operations unsupported on this GPU or driver?)");
}

}  // namespace epcomm
