// One rank's side of a fault case: a small fixed workload (high-throughput or low-latency) and its
// calls as steps, each synchronised and followed by Buffer::check_status(), so a peer's fault
// surfaces as an epcomm::Error from the step that met it. Public API only (plus the CUDA runtime).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"

namespace epcomm::faults {

// The shapes of a session; a mismatch case changes one of them on the peer.
struct Shape {
  std::int64_t tokens = 128;   // HT: tokens per rank; LL: T (max_tokens_per_rank)
  std::int64_t hidden = 2048;  // HT hidden; LL hidden is ll_hidden
  std::int64_t ll_hidden = 512;
  int num_topk = 4;
  int num_sms = 8;
  std::int64_t num_worst_tokens = 0;  // HT worst-case mode when > 0
  int experts_per_rank = 4;
};

// Throws epcomm::Error(kCuda) naming `what` when `status` is not cudaSuccess.
void cuda_check(cudaError_t status, const char* what);

class Session {
 public:
  // ranks_per_domain > 0 splits the ranks into NVLink domains of that many (BufferOptions::
  // ranks_per_domain): with two or more, the high-throughput Buffer is a multi-domain one (rows
  // between domains through NVSHMEM, num_rdma_bytes sized for every shape a case uses) and the
  // low-latency one crosses domains by NVSHMEM puts. Needs a program linked with epcomm_nvshmem.
  Session(std::shared_ptr<Bootstrap> bootstrap, int rank, int world, std::int64_t timeout_ms,
          cudaStream_t stream, int ranks_per_domain = 0);

  // The Buffers (collective constructors); a case's Buffer is made once.
  void create_ht(bool mask_on_timeout);
  void create_ll(const Shape& shape, bool mask_on_timeout);
  void destroy();  // the Buffer's destructor
  Buffer& buffer() { return *buffer_; }
  bool has_buffer() const { return buffer_ != nullptr; }

  // High-throughput steps (inputs made from `shape` on first use and when it changes).
  void layout(const Shape& shape);
  void dispatch(const Shape& shape, bool synchronise = true);  // false: return once launched
  void combine(const Shape& shape);
  void cached_dispatch(const Shape& shape);
  void barrier();
  // Low-latency steps.
  void ll_dispatch(const Shape& shape);
  void ll_send(const Shape& shape);  // a split dispatch's send (return_recv_hook); receive in ll_receive
  void ll_receive();
  // With `zero_copy`, the dispatch's rows are copied into the Buffer's next combine buffer first and
  // the combine reads them there (pulled by the owners with CUDA IPC).
  void ll_combine(const Shape& shape, bool zero_copy = false);

 private:
  struct Inputs;
  void finish();                                      // synchronise the stream, then check_status()
  const Inputs& inputs(const Shape& shape, bool ll);  // made on first use and when they change
  std::shared_ptr<Bootstrap> bootstrap_;
  int rank_, world_;
  std::int64_t timeout_ms_;
  int ranks_per_domain_;
  // The ranks span two or more NVLink domains.
  bool multi_domain() const { return ranks_per_domain_ > 0 && world_ / ranks_per_domain_ > 1; }
  cudaStream_t stream_;
  std::unique_ptr<Buffer> buffer_;
  std::shared_ptr<Inputs> inputs_;
  std::shared_ptr<DispatchLayout> layout_;
  std::shared_ptr<Inputs> layout_of_;  // the inputs layout_ was computed from
  std::shared_ptr<DispatchResult> dispatched_;
  std::shared_ptr<LlDispatchResult> ll_dispatched_;
};

}  // namespace epcomm::faults
