#include "harness.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>

namespace epcomm::test {

namespace {

GpuEnv g_env;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

class PoisoningAllocator final : public Allocator {
 public:
  explicit PoisoningAllocator(std::uint8_t poison) : poison_(poison) {}
  void* allocate(std::size_t bytes, cudaStream_t stream) override {
    void* ptr = default_allocator()->allocate(bytes, stream);
    if (bytes > 0) EPCOMM_CUDA_CHECK(cudaMemsetAsync(ptr, poison_, bytes, stream));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept override {
    default_allocator()->deallocate(ptr, bytes, stream);
  }

 private:
  std::uint8_t poison_;
};

}  // namespace

GpuEnv& gpu_env() {
  return g_env;
}

std::shared_ptr<Allocator> poisoning_allocator(std::uint8_t poison) {
  return std::make_shared<PoisoningAllocator>(poison);
}

std::vector<std::int64_t> random_topk(std::uint64_t seed, std::int64_t num_tokens, int num_topk,
                                      int num_experts, double empty_fraction) {
  if (num_topk > num_experts)  // k distinct experts must exist
    throw std::invalid_argument("random_topk: num_topk " + std::to_string(num_topk) +
                                " exceeds num_experts " + std::to_string(num_experts));
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> topk(static_cast<std::size_t>(num_tokens * num_topk));
  std::vector<int> experts(static_cast<std::size_t>(num_experts));
  std::iota(experts.begin(), experts.end(), 0);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  for (std::int64_t t = 0; t < num_tokens; ++t) {
    // A partial Fisher-Yates shuffle picks k distinct experts.
    for (int j = 0; j < num_topk; ++j) {
      std::uniform_int_distribution<int> pick(j, num_experts - 1);
      std::swap(experts[static_cast<std::size_t>(j)], experts[static_cast<std::size_t>(pick(rng))]);
      const bool empty = coin(rng) < empty_fraction;
      topk[static_cast<std::size_t>(t * num_topk + j)] = empty ? -1 : experts[static_cast<std::size_t>(j)];
    }
  }
  return topk;
}

}  // namespace epcomm::test

int main(int argc, char** argv) {
  // Hard safety rule on shared GPU machines: never use NVLink multicast.
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
  setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);

  using epcomm::test::g_env;
  g_env.rank = epcomm::test::env_int("RANK", 0);
  g_env.world = epcomm::test::env_int("WORLD_SIZE", 1);
  g_env.local_rank = epcomm::test::env_int("LOCAL_RANK", 0);

  int num_gpus = 0;
  if (cudaGetDeviceCount(&num_gpus) != cudaSuccess || num_gpus == 0) {
    std::printf("skipped: no GPU\n");
    return 77;
  }
  // EPCOMM_TEST_SHARE_GPUS=1 lets several ranks share a GPU (rank r on GPU r mod count): the
  // kernels then see peers on their own device, reached through CUDA IPC all the same, and the
  // ranks' kernels take turns on the GPU (time slices), so such runs check correctness only.
  const bool share_gpus = epcomm::test::env_int("EPCOMM_TEST_SHARE_GPUS", 0) != 0;
  if (num_gpus < g_env.world && !share_gpus) {
    std::printf("skipped: needs %d GPUs, found %d (EPCOMM_TEST_SHARE_GPUS=1 shares them)\n", g_env.world,
                num_gpus);
    return 77;
  }
  try {
    g_env.device = g_env.local_rank % num_gpus;
    EPCOMM_CUDA_CHECK(cudaSetDevice(g_env.device));
    g_env.bootstrap = epcomm::make_tcp_bootstrap(epcomm::tcp_bootstrap_options_from_env());
    EPCOMM_CUDA_CHECK(cudaStreamCreateWithFlags(&g_env.stream, cudaStreamNonBlocking));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test setup failed: %s\n", e.what());
    return 1;
  }
  testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // Every rank learns whether any rank failed, so all exit alike.
  std::vector<int> all(static_cast<std::size_t>(g_env.world));
  try {
    g_env.bootstrap->all_gather(&failed, all.data(), sizeof(int));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "final all_gather failed: %s\n", e.what());
    return 1;
  }
  const int any_failed = *std::max_element(all.begin(), all.end());
  if (any_failed && !failed) std::fprintf(stderr, "another rank failed\n");
  return any_failed ? 1 : 0;
}
