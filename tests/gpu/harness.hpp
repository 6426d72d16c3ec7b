// Shared pieces of the multi-process GPU tests. Each test program is started by epcomm-run (one
// process per GPU); the harness's main() checks for GPUs (exit 77, "skipped", where there is none or
// too few; any other CUDA error fails: gpu_gate.hpp), selects the device, builds the bootstrap and
// runs the GoogleTest cases. A program passes only when every rank passed; it skips when every case
// skipped; with EPCOMM_REQUIRE_GPU=1 (every run that backs a claim) any skip is a failure.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/device_tensor.hpp"
#include "epcomm/error.hpp"
#include "epcomm/types.hpp"
#include "core/cuda_check.hpp"
#include "core/cuda_raii.hpp"

namespace epcomm::test {

struct GpuEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  int device = 0;  // the CUDA device this rank runs on (shared by several ranks under EPCOMM_TEST_SHARE_GPUS)
  std::shared_ptr<Bootstrap> bootstrap;
  cudaStream_t stream = nullptr;  // a non-blocking stream for the test's own work
};
GpuEnv& gpu_env();

// An allocator that poisons every allocation (fill_poison) before handing it out, so outputs a
// kernel forgets to write are caught, whatever their dtype.
std::shared_ptr<Allocator> poisoning_allocator();

// Fills `bytes` bytes at `ptr` with the poison of checks.hpp (NaN for every float type, an
// impossible value for every index type), queued on `stream`.
void fill_poison(void* ptr, std::size_t bytes, cudaStream_t stream);

// Runs `call`, which must throw the device's report of a peer that never came: an epcomm::Error of
// category kTimeout whose message says `what` (e.g. "combine timed out") and names the rank waited
// for.
template <typename Call>
void expect_peer_timeout(Call&& call, const std::string& what) {
  try {
    call();
    ADD_FAILURE() << "expected a timeout: " << what;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
    EXPECT_NE(e.message().find(what), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("waiting for rank"), std::string::npos) << e.what();
  }
}

// Copies host data into a new device tensor (default allocator, synchronous).
template <typename T>
DeviceTensor upload(const std::vector<T>& host, DType dtype, std::initializer_list<std::int64_t> shape) {
  DeviceTensor t = DeviceTensor::empty(default_allocator(), dtype, shape, nullptr);
  EPCOMM_REQUIRE(t.view().nbytes() == host.size() * sizeof(T), ErrorCategory::kInternal,
                 "upload: ", host.size() * sizeof(T), " host bytes for ", t.view().describe());
  copy_to_device(t.data(), host.data(), t.view().nbytes());
  return t;
}

// Copies a contiguous device tensor back (synchronous: waits for the device).
template <typename T>
std::vector<T> download(const Tensor& t) {
  EPCOMM_REQUIRE(t.nbytes() % sizeof(T) == 0, ErrorCategory::kInternal, "download: size mismatch");
  std::vector<T> host(t.nbytes() / sizeof(T));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  if (!host.empty()) EPCOMM_CUDA_CHECK(cudaMemcpy(host.data(), t.data, t.nbytes(), cudaMemcpyDeviceToHost));
  return host;
}

// Same on every rank: a seed depends only on the test and the rank whose data it makes.
inline std::uint64_t seed_for(std::uint64_t test_seed, int rank) {
  return test_seed * 1000003ull + static_cast<std::uint64_t>(rank);
}

// Random top-k routing: k distinct experts per token, and `empty_fraction` of slots set to -1.
std::vector<std::int64_t> random_topk(std::uint64_t seed, std::int64_t num_tokens, int num_topk,
                                      int num_experts, double empty_fraction);

}  // namespace epcomm::test
