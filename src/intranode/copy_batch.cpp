#include "intranode/copy_batch.hpp"

#include "core/cuda_check.hpp"

namespace epcomm {

void CopyBatch::add(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  dsts_.push_back(dst);
  srcs_.push_back(src);
  sizes_.push_back(bytes);
}

void CopyBatch::flush(cudaStream_t stream) {
  if (dsts_.empty()) return;
  cudaMemcpyAttributes attrs{};
  attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;  // the sources are written earlier on the stream
  attrs.flags = cudaMemcpyFlagPreferOverlapWithCompute;   // kernels spinning beside them hold the SMs
  std::size_t first = 0;
  EPCOMM_CUDA_CHECK(cudaMemcpyBatchAsync(dsts_.data(), srcs_.data(), sizes_.data(), dsts_.size(), &attrs,
                                         &first, 1, stream));
  dsts_.clear();
  srcs_.clear();
  sizes_.clear();
}

}  // namespace epcomm
