// Programmatic dependent launch (core/pdl.hpp): a kernel started by launch_kernel(Launch::kPdl)
// sees every write of the kernel ahead of it on the stream, in a chain of such kernels and in a
// captured graph, and (when EPCOMM_PDL is on) it is placed on the GPU before that kernel ends.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/pdl.cuh"
#include "core/ptx.cuh"
#include "harness.hpp"

namespace epcomm::test {
namespace {

constexpr int kWords = 1 << 16;
constexpr int kChain = 64;

// Lets the kernel behind it start at once, spins `spin_ns` on the global timer, then writes
// `value + i` into out[i] and stamps its end.
__global__ void slow_writer(std::uint64_t spin_ns, int value, int* out, std::uint64_t* end_ns) {
  pdl_entry();
  const std::uint64_t start = ptx::globaltimer();
  while (ptx::globaltimer() - start < spin_ns) {
  }
  for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < kWords; i += blockDim.x * gridDim.x)
    out[i] = value + i;
  __syncthreads();
  if (threadIdx.x == 0 && blockIdx.x == 0) *end_ns = ptx::globaltimer();
}

// Stamps when its block was placed (before it waits), then counts the words that differ from
// `value + i`.
__global__ void checking_reader(const int* in, int value, int* mismatches, std::uint64_t* placed_ns) {
  const std::uint64_t placed = ptx::globaltimer();  // a register: no memory touched before the entry
  pdl_entry();
  if (threadIdx.x == 0 && blockIdx.x == 0) *placed_ns = placed;
  for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < kWords; i += blockDim.x * gridDim.x)
    if (in[i] != value + i) atomicAdd(mismatches, 1);
}

// One link of a chain: every word + 1.
__global__ void add_one(int* words) {
  pdl_entry();
  for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < kWords; i += blockDim.x * gridDim.x) words[i] += 1;
}

struct Device {
  int* words = nullptr;
  int* mismatches = nullptr;
  std::uint64_t* stamps = nullptr;  // [0]: writer's end, [1]: reader placed
  Device() {
    EXPECT_EQ(cudaMalloc(&words, sizeof(int) * kWords), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&mismatches, sizeof(int)), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&stamps, 2 * sizeof(std::uint64_t)), cudaSuccess);
  }
  ~Device() {
    cudaFree(words);
    cudaFree(mismatches);
    cudaFree(stamps);
  }
};

// Catches: a kernel placed early reading before the one ahead of it finished (the entry's wait missing
// or ineffective): its reads would see the poison, not the writes made after a 200 us spin.
TEST(Pdl, ReaderSeesEveryWriteOfTheSlowWriterAheadOfIt) {
  const cudaStream_t s = gpu_env().stream;
  Device d;
  std::uint64_t stamps[2] = {};
  int placed_early = 0;
  constexpr int kRounds = 8;
  // Round 0 is not counted as early or late: a kernel's first launch loads its module (CUDA's lazy
  // loading), which placed the first reader after its writer ended (session 26's first run).
  for (int round = 0; round <= kRounds; ++round) {
    ASSERT_EQ(cudaMemsetAsync(d.words, 0xff, sizeof(int) * kWords, s), cudaSuccess);
    ASSERT_EQ(cudaMemsetAsync(d.mismatches, 0, sizeof(int), s), cudaSuccess);
    launch_kernel(Launch::kPdl, slow_writer, 8, 256, 0, s, std::uint64_t{200'000}, 1000 * round + 7, d.words,
                  d.stamps);
    launch_kernel(Launch::kPdl, checking_reader, 64, 256, 0, s, static_cast<const int*>(d.words),
                  1000 * round + 7, d.mismatches, d.stamps + 1);
    int mismatches = -1;
    ASSERT_EQ(cudaMemcpyAsync(&mismatches, d.mismatches, sizeof(int), cudaMemcpyDeviceToHost, s),
              cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(stamps, d.stamps, sizeof(stamps), cudaMemcpyDeviceToHost, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    EXPECT_EQ(mismatches, 0) << "round " << round;
    if (round > 0 && stamps[1] < stamps[0]) ++placed_early;
  }
  // Catches: the launch attribute silently ignored (every reader placed after its writer ended), or
  // EPCOMM_PDL=0 not honoured. The writer spins 200 us after letting the reader in, so an
  // early reader is placed long before the writer's end.
  if (pdl_enabled())
    EXPECT_EQ(placed_early, kRounds) << "readers placed before their writer ended";
  else
    EXPECT_EQ(placed_early, 0) << "readers placed before their writer ended";
}

// Catches: a wait that orders a kernel after the one directly ahead of it but not after that one's
// own predecessor (each link must see all earlier links), on a stream and in a replayed graph.
TEST(Pdl, ChainOfPdlKernelsAddsInOrderOnStreamAndInGraph) {
  const cudaStream_t s = gpu_env().stream;
  Device d;
  std::vector<int> host(kWords);
  for (int i = 0; i < kWords; ++i) host[i] = 3 * i - 5;
  ASSERT_EQ(cudaMemcpyAsync(d.words, host.data(), sizeof(int) * kWords, cudaMemcpyHostToDevice, s),
            cudaSuccess);
  for (int k = 0; k < kChain; ++k) launch_kernel(Launch::kPdl, add_one, 32, 256, 0, s, d.words);

  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  for (int k = 0; k < kChain; ++k) launch_kernel(Launch::kPdl, add_one, 32, 256, 0, s, d.words);
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  constexpr int kReplays = 3;
  for (int r = 0; r < kReplays; ++r) ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), d.words, sizeof(int) * kWords, cudaMemcpyDeviceToHost, s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  int wrong = 0;
  for (int i = 0; i < kWords; ++i) wrong += host[i] != 3 * i - 5 + kChain * (1 + kReplays) ? 1 : 0;
  EXPECT_EQ(wrong, 0) << "first word " << host[0] << ", expected " << -5 + kChain * (1 + kReplays);
}

}  // namespace
}  // namespace epcomm::test
