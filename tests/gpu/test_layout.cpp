// get_dispatch_layout on the GPU against the CPU reference: every output element, on random
// routing with -1 slots, int64 and int32 indices, a rank with no tokens, and an invalid index.
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "harness.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::test {
namespace {

struct LayoutCase {
  std::int64_t num_tokens;  // per rank; rank 1 gets `tokens_on_rank1` instead when >= 0
  std::int64_t tokens_on_rank1;
  int num_topk;
  int experts_per_rank;
  double empty_fraction;
  bool int32_index;
};

void run_layout_case(Buffer& buffer, const LayoutCase& c, std::uint64_t seed) {
  const GpuEnv& env = gpu_env();
  const int R = env.world;
  const int E = c.experts_per_rank * R;
  const std::int64_t T = (env.rank == 1 && c.tokens_on_rank1 >= 0) ? c.tokens_on_rank1 : c.num_tokens;
  const std::vector<std::int64_t> topk =
      random_topk(seed_for(seed, env.rank), T, c.num_topk, E, c.empty_fraction);

  ref::Geometry geometry{R, E, R};
  const ref::Layout expected = ref::get_dispatch_layout(geometry, topk, T, c.num_topk);

  DeviceTensor topk_dev;
  if (c.int32_index) {
    std::vector<std::int32_t> narrow(topk.begin(), topk.end());
    topk_dev = upload(narrow, DType::kI32, {T, c.num_topk});
  } else {
    topk_dev = upload(topk, DType::kI64, {T, c.num_topk});
  }
  const DispatchLayout got = buffer.get_dispatch_layout(topk_dev, E, {.stream = env.stream});
  EXPECT_EQ(download<std::int32_t>(got.num_tokens_per_rank), expected.num_tokens_per_rank);
  EXPECT_EQ(download<std::int32_t>(got.num_tokens_per_domain), expected.num_tokens_per_domain);
  EXPECT_EQ(download<std::int32_t>(got.num_tokens_per_expert), expected.num_tokens_per_expert);
  EXPECT_EQ(download<std::uint8_t>(got.is_token_in_rank), expected.is_token_in_rank);
  buffer.check_status();
}

class LayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    buffer_ = std::make_unique<Buffer>(
        gpu_env().bootstrap, BufferOptions{.num_nvl_bytes = 1 << 20, .allocator = poisoning_allocator()});
  }
  std::unique_ptr<Buffer> buffer_;
};

TEST_F(LayoutTest, RandomRoutingInt64) {
  run_layout_case(*buffer_, {4096, -1, 8, 128, 0.1, false}, 1);
}
TEST_F(LayoutTest, RandomRoutingInt32) {
  run_layout_case(*buffer_, {1000, -1, 8, 144, 0.1, true}, 2);
}
TEST_F(LayoutTest, RankWithNoTokens) {
  run_layout_case(*buffer_, {777, 0, 6, 16, 0.2, false}, 3);
}
TEST_F(LayoutTest, ManyTokens) {
  run_layout_case(*buffer_, {10000, 4097, 8, 64, 0.1, false}, 6);
}
TEST_F(LayoutTest, ManyExpertsGlobalCounts) {
  run_layout_case(*buffer_, {513, -1, 32, 5000, 0.05, false}, 4);
}
TEST_F(LayoutTest, AllSlotsEmpty) {
  run_layout_case(*buffer_, {300, -1, 4, 8, 1.0, false}, 5);
}

TEST_F(LayoutTest, RepeatedCallsReuseTheBuffer) {
  for (int i = 0; i < 20; ++i) run_layout_case(*buffer_, {257, -1, 8, 32, 0.1, i % 2 == 1}, 100 + i);
}

TEST_F(LayoutTest, AsyncFinishReturnsAnEvent) {
  const GpuEnv& env = gpu_env();
  const int E = 16 * env.world;
  const auto topk = random_topk(seed_for(7, env.rank), 64, 4, E, 0.0);
  DeviceTensor topk_dev = upload(topk, DType::kI64, {64, 4});
  const DispatchLayout got =
      buffer_->get_dispatch_layout(topk_dev, E, {.stream = env.stream, .async_finish = true});
  ASSERT_TRUE(got.event.valid());
  got.event.synchronize();
  const ref::Layout expected = ref::get_dispatch_layout({env.world, E, env.world}, topk, 64, 4);
  EXPECT_EQ(download<std::int32_t>(got.num_tokens_per_expert), expected.num_tokens_per_expert);
}

TEST_F(LayoutTest, InvalidExpertIsReportedAndNothingOverflows) {
  const GpuEnv& env = gpu_env();
  const int E = 8 * env.world;
  std::vector<std::int64_t> topk = random_topk(seed_for(9, env.rank), 50, 4, E, 0.0);
  topk[4 * 17 + 2] = E;  // token 17 names an expert that does not exist
  DeviceTensor topk_dev = upload(topk, DType::kI64, {50, 4});
  const DispatchLayout got = buffer_->get_dispatch_layout(topk_dev, E, {.stream = env.stream});
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));
  try {
    buffer_->check_status();
    ADD_FAILURE() << "expected an epcomm::Error for the invalid expert index";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("topk_idx"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("token 17"), std::string::npos) << e.what();
  }
  // The invalid slot was skipped: the counts equal the reference's with that slot emptied.
  topk[4 * 17 + 2] = -1;
  const ref::Layout expected = ref::get_dispatch_layout({env.world, E, env.world}, topk, 50, 4);
  EXPECT_EQ(download<std::int32_t>(got.num_tokens_per_expert), expected.num_tokens_per_expert);
  buffer_->check_status();  // an input error does not stick
}

TEST_F(LayoutTest, BadArgumentsThrowBeforeLaunch) {
  const GpuEnv& env = gpu_env();
  const int E = 8 * env.world;
  DeviceTensor as_float = upload(std::vector<float>(32, 1.0f), DType::kF32, {8, 4});
  EXPECT_THROW(buffer_->get_dispatch_layout(as_float, E), Error);
  DeviceTensor topk_dev = upload(std::vector<std::int64_t>(32, 0), DType::kI64, {8, 4});
  if (env.world > 1) EXPECT_THROW(buffer_->get_dispatch_layout(topk_dev, E + 1), Error);  // E % R != 0
  EXPECT_THROW(buffer_->get_dispatch_layout(topk_dev, -E), Error);
  EXPECT_THROW(buffer_->get_dispatch_layout(topk_dev, 0), Error);
}

}  // namespace
}  // namespace epcomm::test
