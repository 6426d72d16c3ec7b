#include "epcomm/stream.hpp"

#include "core/cuda_check.hpp"
#include "core/log.hpp"

namespace epcomm {

EventHandle EventHandle::record(cudaStream_t stream) {
  cudaEvent_t raw = nullptr;
  EPCOMM_CUDA_CHECK(cudaEventCreateWithFlags(&raw, cudaEventDisableTiming));
  std::shared_ptr<CUevent_st> event(raw, [](cudaEvent_t e) {
    const cudaError_t status = cudaEventDestroy(e);
    if (status != cudaSuccess)
      EPCOMM_LOG_WARN("cudaEventDestroy failed during cleanup: ", cudaGetErrorString(status));
  });
  EPCOMM_CUDA_CHECK(cudaEventRecord(raw, stream));
  return EventHandle(std::move(event));
}

void EventHandle::wait(cudaStream_t stream) const {
  if (event_) EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(stream, event_.get(), 0));
}

void EventHandle::synchronize() const {
  if (event_) EPCOMM_CUDA_CHECK(cudaEventSynchronize(event_.get()));
}

}  // namespace epcomm
