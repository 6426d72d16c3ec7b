// Device-to-device copies queued on a stream as one batch: one host call however many peers
// (cudaMemcpyBatchAsync), which matters once a chunk has a copy per peer on 8 ranks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

namespace epcomm {

class CopyBatch {
 public:
  // Empty copies are dropped. The copies of one batch may run in any order among themselves.
  void add(void* dst, const void* src, std::size_t bytes);
  // Queues the copies added since the last flush on `stream`, in stream order, asking the driver to
  // run them beside compute (on the copy engines), and starts a new batch.
  void flush(cudaStream_t stream);
  std::size_t size() const { return dsts_.size(); }

 private:
  std::vector<void*> dsts_;
  std::vector<const void*> srcs_;
  std::vector<std::size_t> sizes_;
};

}  // namespace epcomm
