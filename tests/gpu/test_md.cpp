// Multi-domain dispatch and combine (docs/multi_domain.md) on the GPUs against the CPU reference,
// every element of every row (combine within a BF16 tolerance): rows cross domains through NVSHMEM
// and are forwarded over NVLink to their final single-domain place, so the reference is the
// oracle unchanged. Run with ranks sharing a GPU and EPCOMM_RANKS_PER_DOMAIN=G (2 ranks as 2 x 1,
// 4 as 2 x 2 and 4 x 1, 8 as 2 x 4 and 4 x 2); a program whose ranks form one domain fails (it
// would test nothing of this mode). Outputs come from a poisoning allocator, so rows the kernels
// forget show up as mismatches. The cases this program shares with test_ht.cpp are in
// ht_cases.hpp, the steps of a run in ht_run.hpp.
#include <chrono>
#include <cstdlib>
#include <string>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "epcomm/multi_domain.hpp"
#include "harness.hpp"
#include "ht_cases.hpp"
#include "ht_inputs.hpp"
#include "ht_run.hpp"

namespace epcomm::test {
namespace {

constexpr std::int64_t kNvlBytes = std::int64_t{1} << 29;

// Dispatch (zero-copy outputs poisoned by a first call), combine, then a cached dispatch of case
// `c`, each against the reference, waited for as `mode` says.
void run_case(Buffer& buffer, const HtCase& c, const HtMode& mode = {}) {
  const GpuEnv& env = gpu_env();
  ASSERT_GT(buffer.num_domains(), 1) << "set EPCOMM_RANKS_PER_DOMAIN so that the ranks form several domains";
  ASSERT_FALSE(mode.previous_event) << "no case of this program orders its calls after an event";
  const int G = buffer.num_domain_ranks();
  const HtExpected expected = ht_expected(c, env.world, G);
  const ref::HtRankInput& in = expected.input(env.rank);

  const CallOptions options{.stream = env.stream, .async_finish = mode.async_finish};
  HtDeviceInputs u = upload_inputs(buffer, c, in, expected.geometry.num_experts, {.stream = env.stream});
  u.args.num_worst_tokens = expected.options.num_worst_tokens;
  u.args.zero_copy = mode.zero_copy;
  // Several domains: the Buffer runs get_dispatch_layout inside the call.
  if (mode.derive_layout) leave_layout_to_dispatch(u.args, expected.geometry.num_experts);
  if (mode.zero_copy) dispatch_and_poison(buffer, u.args, options);
  const DispatchResult got = buffer.dispatch(u.args, options);
  finish(buffer, got.event, mode.async_finish);
  expect_dispatch_outputs(got, c, in, expected.output(env.rank));
  if (::testing::Test::HasFatalFailure()) return;
  if (mode.combine) run_combine(buffer, c, expected, got, /*recv_weights=*/Tensor{}, options);
  if (mode.cached) run_cached_dispatch(buffer, c, G, got, mode.zero_copy, options);
}

// Sized for the largest case below at every SM budget the cases use.
std::int64_t rdma_bytes() {
  const GpuEnv& env = gpu_env();
  int sms = 0;
  EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, env.device));
  const char* given = std::getenv("EPCOMM_RANKS_PER_DOMAIN");
  const int G = given != nullptr ? std::atoi(given) : env.world;
  const MultiDomainShape shape{.num_tokens = 1500,
                               .hidden = 8192,
                               .num_topk = 32,
                               .num_experts = 128 * env.world,
                               .num_ranks = env.world,
                               .ranks_per_domain = G};
  return multi_domain_rdma_bytes_hint(shape, sms);
}

BufferOptions md_buffer_options() {
  return {.num_nvl_bytes = kNvlBytes, .num_rdma_bytes = rdma_bytes(), .allocator = poisoning_allocator()};
}
class Md : public SharedBufferSuite<md_buffer_options> {
 protected:
  static void run(const HtCase& c, const HtMode& mode) { run_case(*buffer_, c, mode); }
};

// The cases of ht_cases.hpp, then this program's own, as tests Md.<name>.
[[maybe_unused]] const bool kCasesRegistered =
    register_cases<Md>("Md", shared_ht_cases(), __FILE__, __LINE__) &&
    register_cases<Md>(
        "Md",
        {
            {"WorstCaseFp8ZeroCopy", {.fp8 = true, .worst_case = true, .seed = 9}, {.zero_copy = true}},
            {"ZeroCopyBf16", {.seed = 11}, {.zero_copy = true}},
            {"LargestHidden", {.num_tokens = 700, .hidden = 8192, .seed = 14}},
            {"DerivedLayoutBf16", {.seed = 15}, {.derive_layout = true}},
            {"DerivedLayoutFp8Async",
             {.fp8 = true, .seed = 16},
             {.async_finish = true, .derive_layout = true}},
        },
        __FILE__, __LINE__);

class MdSms : public Md, public ::testing::WithParamInterface<int> {};
TEST_P(MdSms, Budget) {
  for (const HtCase& c : budget_cases(sm_budget(GetParam()))) run_case(*buffer_, c);
}
INSTANTIATE_TEST_SUITE_P(Budgets, MdSms, ::testing::Values(2, 24, 0));  // 0: every SM

TEST_F(Md, BackToBackCalls) {
  run_case(*buffer_, {.num_tokens = 200, .seed = 40});
  for (int i = 0; i < 2; ++i) run_case(*buffer_, {.num_tokens = 200, .seed = 41u + i}, {.cached = false});
  for (int i = 0; i < 100; ++i)
    run_case(*buffer_,
             {.num_tokens = 64,
              .hidden = 2048,
              .num_sms = 2 + 2 * (i % 6),
              .worst_case = i % 3 == 0,
              .seed = 100u + i},
             {.cached = i % 5 == 0});
}

// The last rank never calls dispatch: the ranks waiting on it (its forwarders' peers of the same
// local index in other domains, and its own domain) get a timeout naming it; every other rank a
// timeout too, within the bound. Its own Buffer (a timeout leaves a Buffer unusable).
TEST(MdPeerGone, OthersTimeOutNamingIt) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = kNvlBytes,
                                             .num_rdma_bytes = rdma_bytes(),
                                             .timeout_ms = 3000,
                                             .allocator = poisoning_allocator()});
  const int G = buffer.num_domain_ranks(), gone = env.world - 1;
  if (env.rank != gone) {
    const HtCase c{.num_tokens = 128, .seed = 50};
    HtDeviceInputs u = upload_inputs(buffer, c, make_ht_input(c, env.rank, env.world),
                                     c.experts_per_rank * env.world, {.stream = env.stream});
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
    const auto start = std::chrono::steady_clock::now();
    try {
      buffer.dispatch(u.args, {.stream = env.stream});
      ADD_FAILURE() << "expected a timeout: rank " << gone << " never calls";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kTimeout) << e.what();
      EXPECT_NE(e.message().find("waiting for rank"), std::string::npos) << e.what();
      // Its forwarder's peers of the same local index wait on its count record directly.
      if (env.rank % G == gone % G && env.rank / G != gone / G) {
        const std::string named =
            "waiting for rank " + std::to_string(gone) + " of domain " + std::to_string(gone / G);
        EXPECT_NE(e.message().find(named), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  }
  env.bootstrap->barrier();  // the silent rank stays until the others have their errors
}

// The last rank dispatches another hidden: every rank gets the mismatch within a fraction of the
// timeout, none a timeout. The rank paired with it across domains compares the two calls and names
// the field; a rank whose own peers agree is told by its domain peer that it stopped
// (docs/multi_domain.md, "Bounded waits"); the data kernels behind the exchange stop at once.
TEST(MdPeerMismatch, EveryRankIsToldAtOnce) {
  const GpuEnv& env = gpu_env();
  Buffer buffer(env.bootstrap, BufferOptions{.num_nvl_bytes = kNvlBytes,
                                             .num_rdma_bytes = rdma_bytes(),
                                             .timeout_ms = 20000,
                                             .allocator = poisoning_allocator()});
  ASSERT_GT(buffer.num_domains(), 1) << "set EPCOMM_RANKS_PER_DOMAIN so that the ranks form several domains";
  const bool last = env.rank == env.world - 1;
  const HtCase c{.num_tokens = 128, .hidden = last ? 4096 : 2048, .seed = 60};
  HtDeviceInputs u = upload_inputs(buffer, c, make_ht_input(c, env.rank, env.world),
                                   c.experts_per_rank * env.world, {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  env.bootstrap->barrier();
  const auto start = std::chrono::steady_clock::now();
  try {
    buffer.dispatch(u.args, {.stream = env.stream});
    ADD_FAILURE() << "expected a peer mismatch: rank " << env.world - 1 << " passes another hidden";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find("peer mismatch"), std::string::npos) << e.what();
    const bool compared = e.message().find("hidden is") != std::string::npos;
    const bool told = e.message().find("stopped its count exchange") != std::string::npos;
    EXPECT_TRUE(compared || told) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
      << "a timeout, not the mismatch";
  env.bootstrap->barrier();
}

}  // namespace
}  // namespace epcomm::test
