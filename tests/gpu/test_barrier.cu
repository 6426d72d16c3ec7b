// The domain barrier: it orders writes into peers' regions (a value written before the barrier is
// seen after it, over many rounds), and a peer that never arrives ends in a timeout error that
// names it instead of a hang.
#include <cuda_runtime.h>

#include <chrono>
#include <thread>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "buffer/barrier.hpp"
#include "transport/region_layout.hpp"
#include "buffer/buffer_impl.hpp"

namespace epcomm::test {
namespace {

constexpr int kWordsPerPeer = 4096;

// Every rank writes `round * 1000 + its rank` into its slot of every peer's data region.
__global__ void write_to_peers(DomainView view, int round) {
  for (int p = 0; p < view.num_domain_ranks; ++p) {
    int* slot =
        reinterpret_cast<int*>(RegionLayout::data(view.peer_base[p])) + view.domain_rank * kWordsPerPeer;
    for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < kWordsPerPeer; i += blockDim.x * gridDim.x)
      slot[i] = round * 1000 + view.domain_rank + i;
  }
}

// Counts the words of this rank's region that do not hold what each peer wrote this round.
__global__ void count_mismatches(DomainView view, int round, int* mismatches) {
  const int* mine = reinterpret_cast<const int*>(RegionLayout::data(view.peer_base[view.domain_rank]));
  for (int p = 0; p < view.num_domain_ranks; ++p)
    for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < kWordsPerPeer; i += blockDim.x * gridDim.x)
      if (mine[p * kWordsPerPeer + i] != round * 1000 + p + i) atomicAdd(mismatches, 1);
}

TEST(Barrier, OrdersPeerWritesOverManyRounds) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, {.num_nvl_bytes = 4 << 20});
  const DomainView view = buffer_impl_view(buffer);
  DeviceTensor mismatches = upload(std::vector<int>(1, 0), DType::kI32, {1});
  const cudaStream_t s = buffer.comm_stream();
  for (int round = 1; round <= 200; ++round) {
    write_to_peers<<<8, 256, 0, s>>>(view, round);
    launch_domain_barrier(view, s);  // every peer's writes of this round are visible after it
    count_mismatches<<<8, 256, 0, s>>>(view, round, static_cast<int*>(mismatches.data()));
    launch_domain_barrier(view, s);  // nobody overwrites the region before every rank checked it
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(s));
  buffer.check_status();
  EXPECT_EQ(download<int>(mismatches)[0], 0);
}

// Catches (issue 18, item 8): a Buffer::barrier (the public call) that does not order. Each round
// every rank writes into every peer's region through the peer mapping (buffer_impl_view), passes the
// barrier, and checks what every peer wrote this round; rank 1 queues its writes late in some rounds
// (a host sleep), so a barrier that does not wait for it shows the previous round's values.
TEST(Barrier, ApiBarrierOrdersPeerWrites) {
  const GpuEnv& env = gpu_env();
  if (env.world < 2) GTEST_SKIP() << "ordering needs a peer that can be late";
  Buffer buffer(env.bootstrap, {.num_nvl_bytes = 4 << 20});
  const DomainView view = buffer_impl_view(buffer);
  DeviceTensor mismatches = upload(std::vector<int>(1, 0), DType::kI32, {1});
  const CallOptions call{.stream = env.stream};
  constexpr int kRounds = 60, kLateEvery = 6;
  constexpr auto kLate = std::chrono::milliseconds(20);  // far longer than a barrier's round trip
  for (int round = 1; round <= kRounds; ++round) {
    if (env.rank == 1 && round % kLateEvery == 0) std::this_thread::sleep_for(kLate);
    write_to_peers<<<8, 256, 0, env.stream>>>(view, round);
    buffer.barrier(call);  // every peer's writes of this round are visible after it
    count_mismatches<<<8, 256, 0, env.stream>>>(view, round, static_cast<int*>(mismatches.data()));
    buffer.barrier(call);  // nobody overwrites the region before every rank checked it
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
  EXPECT_EQ(download<int>(mismatches)[0], 0);
}

// Without a region, many barriers back to back run and leave no error (ordering: above).
TEST(Barrier, ManyBackToBackBarriersThroughTheApi) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, {.num_nvl_bytes = 0});
  for (int i = 0; i < 1000; ++i) buffer.barrier({.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  buffer.check_status();
}

TEST(Barrier, MissingPeerEndsInTimeoutNamingIt) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, {.num_nvl_bytes = 0, .timeout_ms = 1500});
  if (env.rank == 0) {
    // Rank 0 waits at the barrier; nobody else comes.
    buffer.barrier({.stream = env.stream});
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
    try {
      buffer.check_status();
      ADD_FAILURE() << "expected a timeout error";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
      EXPECT_NE(e.message().find("barrier"), std::string::npos) << e.what();
      EXPECT_NE(e.message().find("waiting for rank "), std::string::npos) << e.what();
      EXPECT_EQ(e.message().find("waiting for rank 0"), std::string::npos) << e.what();
    }
    // The failure sticks: the buffer's peers are out of step.
    EXPECT_THROW(buffer.barrier({.stream = env.stream}), Error);
  }
  env.bootstrap->barrier();
}

}  // namespace
}  // namespace epcomm::test
