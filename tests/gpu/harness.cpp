#include "harness.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>

#include "checks.hpp"
#include "gpu_gate.hpp"

namespace epcomm::test {

namespace {

GpuEnv g_env;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

class PoisoningAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, cudaStream_t stream) override {
    void* ptr = default_allocator()->allocate(bytes, stream);
    fill_poison(ptr, bytes, stream);
    return ptr;
  }
  void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept override {
    default_allocator()->deallocate(ptr, bytes, stream);
  }
};

}  // namespace

GpuEnv& gpu_env() {
  return g_env;
}

std::shared_ptr<Allocator> poisoning_allocator() {
  return std::make_shared<PoisoningAllocator>();
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

  // Skip (77) only where there is no GPU; EPCOMM_REQUIRE_GPU=1 turns every skip into a failure.
  const bool require_gpu = epcomm::test::env_int("EPCOMM_REQUIRE_GPU", 0) != 0;
  epcomm::test::GateInput gate;
  static_cast<epcomm::GpuPresence&>(gate) = epcomm::probe_gpu_presence();
  gate.world = g_env.world;
  // EPCOMM_TEST_SHARE_GPUS=1 lets several ranks share a GPU (rank r on GPU r mod count): the
  // kernels then see peers on their own device, reached through CUDA IPC all the same, and the
  // ranks' kernels take turns on the GPU (time slices), so such runs check correctness only.
  gate.share_gpus = epcomm::test::env_int("EPCOMM_TEST_SHARE_GPUS", 0) != 0;
  gate.require_gpu = require_gpu;
  const epcomm::test::GateDecision decision = epcomm::test::gpu_gate(gate);
  if (decision.exit_code >= 0) {
    std::fprintf(decision.exit_code == epcomm::test::kExitSkip ? stdout : stderr, "%s\n",
                 decision.message.c_str());
    return decision.exit_code;
  }
  const int num_gpus = gate.num_gpus;
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
  const bool failed = RUN_ALL_TESTS() != 0;
  const testing::UnitTest& unit = *testing::UnitTest::GetInstance();
  if (require_gpu && unit.skipped_test_count() > 0)
    std::fprintf(stderr, "EPCOMM_REQUIRE_GPU=1, so this fails: %d cases skipped\n",
                 unit.skipped_test_count());
  int code = epcomm::test::rank_exit_code(failed, unit.successful_test_count(), unit.skipped_test_count(),
                                          require_gpu);
  // Every rank learns every rank's result, so all exit alike.
  std::vector<int> all(static_cast<std::size_t>(g_env.world));
  try {
    g_env.bootstrap->all_gather(&code, all.data(), sizeof(int));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "final all_gather failed: %s\n", e.what());
    return epcomm::test::kExitFail;
  }
  const int program = epcomm::test::program_exit_code(all);
  if (program != code) std::fprintf(stderr, "another rank ended otherwise (exit %d here)\n", code);
  return program;
}
