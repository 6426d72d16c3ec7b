// Inside one doctor worker (one rank on one GPU): the two phases of the tiny case and what they
// share. Each phase returns what differs from the CPU reference (empty when everything matched) and
// throws epcomm::Error when a call fails.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "core/cuda_check.hpp"
#include "doctor/tiny_case.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/device_tensor.hpp"
#include "epcomm/telemetry.hpp"

namespace epcomm::doctor {

inline constexpr std::int64_t kWorkerPeerTimeoutMs =
    10000;  // BufferOptions::timeout_ms: a dead peer fails fast

// Outputs allocated through it are filled with kPoisonByte first, so an output a kernel never
// wrote cannot pass the comparison.
std::shared_ptr<Allocator> poisoning_allocator();
void poison(const Tensor& t, cudaStream_t stream);  // the tensor's bytes (its physical extent)

// A new device tensor holding `host` (synchronous).
template <typename T>
DeviceTensor upload(const std::vector<T>& host, DType dtype, std::initializer_list<std::int64_t> shape) {
  DeviceTensor t = DeviceTensor::empty(default_allocator(), dtype, shape, nullptr);
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());  // the allocation is stream-ordered
  EPCOMM_CUDA_CHECK(cudaMemcpy(t.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  return t;
}

// The bytes of `t`'s physical extent (numel elements from its data pointer), after the device is idle.
template <typename T>
std::vector<T> download(const Tensor& t) {
  std::vector<T> host(t.nbytes() / sizeof(T));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  if (!host.empty()) EPCOMM_CUDA_CHECK(cudaMemcpy(host.data(), t.data, t.nbytes(), cudaMemcpyDeviceToHost));
  return host;
}

// Layout, dispatch and combine of the tiny case on a high-throughput Buffer, with per-peer
// telemetry on: `traffic` gets this rank's (Buffer::peer_telemetry) when the phase matched.
std::string run_ht_phase(const TinyCase& c, int rank, const std::shared_ptr<Bootstrap>& bootstrap,
                         cudaStream_t stream, std::int64_t& rows_received, std::vector<PeerTraffic>& traffic);
// kLlRounds dispatch/combine round trips on a low-latency Buffer, each with its own inputs; a
// round's outputs are poisoned once checked, so the round two later writes into poison. Telemetry
// as run_ht_phase's.
inline constexpr int kLlRounds = 3;
std::string run_ll_phase(const TinyCase& c, int rank, const std::shared_ptr<Bootstrap>& bootstrap,
                         cudaStream_t stream, std::vector<PeerTraffic>& traffic);

}  // namespace epcomm::doctor
