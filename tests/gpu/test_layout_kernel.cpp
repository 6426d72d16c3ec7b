// The layout kernel (src/intranode/layout.cu) launched directly, for world sizes a GPU test cannot
// start processes for: each of its two forms (a token's ranks as bits of a register up to 64
// ranks, a look back over the token's earlier slots beyond) against the CPU reference, with
// domains, -1 slots, masked ranks, more than 8 slots (two load groups), int32 and int64 indices,
// more experts than its shared-memory histogram holds, and ids out of range (reported, their slots
// skipped). Every output element is compared; is_token_in_rank is poisoned first. One rank:
// nothing crosses between GPUs.
#include <cstdint>
#include <string>
#include <vector>

#include "core/device_status.hpp"
#include "epcomm/reference.hpp"
#include "harness.hpp"
#include "intranode/layout_args.hpp"

namespace epcomm::test {
namespace {

struct KernelCase {
  int num_ranks, ranks_per_domain, experts_per_rank, num_topk;
  std::int64_t num_tokens;
  double empty_fraction;
  int mask_every;  // 0: no rank masked; n: ranks 1, 1 + n, 1 + 2n, ... masked
  bool int32_index;
  int bad_ids = 0;  // slots given an id outside [-1, E) (E, -2, and with int64 2^32 + 1)
};

std::string describe(const KernelCase& c) {
  return "R " + std::to_string(c.num_ranks) + " G " + std::to_string(c.ranks_per_domain) + " E/R " +
         std::to_string(c.experts_per_rank) + " k " + std::to_string(c.num_topk) + " T " +
         std::to_string(c.num_tokens) + " mask_every " + std::to_string(c.mask_every) +
         (c.int32_index ? " int32" : " int64");
}

void run_kernel_case(const KernelCase& c, std::uint64_t seed) {
  SCOPED_TRACE(describe(c));
  const GpuEnv& env = gpu_env();
  const int R = c.num_ranks, E = c.experts_per_rank * c.num_ranks;
  const std::int64_t T = c.num_tokens;
  const ref::Geometry geometry{R, E, c.ranks_per_domain};
  std::vector<std::int64_t> topk = random_topk(seed, T, c.num_topk, E, c.empty_fraction);
  std::vector<std::uint8_t> masked(R, 0);
  if (c.mask_every > 0)
    for (int r = 1; r < R; r += c.mask_every) masked[r] = 1;
  // The kernel reports an id out of range and counts its slot as empty: the reference gets -1 there.
  std::vector<std::int64_t> valid = topk;
  const std::int64_t bad_values[] = {E, -2, c.int32_index ? std::int64_t{E} + 7 : (std::int64_t{1} << 32) + 1};
  for (int b = 0; b < c.bad_ids; ++b) {
    const std::int64_t slot = (static_cast<std::int64_t>(b) * 7919 + 13) % (T * c.num_topk);
    topk[slot] = bad_values[b % 3];
    valid[slot] = -1;
  }
  const ref::Layout expected =
      ref::get_dispatch_layout(geometry, ref::mask_topk(geometry, valid, masked), T, c.num_topk);

  DeviceTensor topk_dev = c.int32_index
                              ? upload(std::vector<std::int32_t>(topk.begin(), topk.end()), DType::kI32, {T, c.num_topk})
                              : upload(topk, DType::kI64, {T, c.num_topk});
  DeviceTensor masked_dev = upload(masked, DType::kU8, {R});
  // The kernel adds into the counts (the caller zeroes them) and writes every flag (poisoned here).
  DeviceTensor per_rank = upload(std::vector<std::int32_t>(R, 0), DType::kI32, {R});
  DeviceTensor per_domain = upload(std::vector<std::int32_t>(R / c.ranks_per_domain, 0), DType::kI32,
                                   {R / c.ranks_per_domain});
  DeviceTensor per_expert = upload(std::vector<std::int32_t>(E, 0), DType::kI32, {E});
  DeviceTensor in_rank = DeviceTensor::empty(default_allocator(), DType::kBool, {T, R}, nullptr);
  fill_poison(in_rank.data(), in_rank.view().nbytes(), env.stream);
  DeviceTensor status = upload(std::vector<std::uint8_t>(sizeof(DeviceStatus), 0), DType::kU8,
                               {static_cast<std::int64_t>(sizeof(DeviceStatus))});

  LayoutArgs args;
  args.topk_idx = topk_dev.data();
  args.topk_is_int32 = c.int32_index;
  args.num_tokens = T;
  args.num_topk = c.num_topk;
  args.num_experts = E;
  args.num_ranks = R;
  args.ranks_per_domain = c.ranks_per_domain;
  args.num_tokens_per_rank = static_cast<std::int32_t*>(per_rank.data());
  args.num_tokens_per_domain = static_cast<std::int32_t*>(per_domain.data());
  args.num_tokens_per_expert = static_cast<std::int32_t*>(per_expert.data());
  args.is_token_in_rank = static_cast<bool*>(in_rank.data());
  args.masked = c.mask_every > 0 ? static_cast<const std::uint8_t*>(masked_dev.data()) : nullptr;
  args.status = static_cast<DeviceStatus*>(status.data());
  args.rank = 3;
  launch_dispatch_layout(args, env.stream);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(env.stream));

  DeviceStatus reported{};
  EPCOMM_CUDA_CHECK(cudaMemcpy(&reported, status.data(), sizeof reported, cudaMemcpyDeviceToHost));
  if (c.bad_ids == 0) {
    EXPECT_EQ(reported.code, 0);
  } else {
    EXPECT_EQ(reported.code, static_cast<std::int32_t>(StatusCode::kInvalidExpert));
    EXPECT_EQ(reported.op, static_cast<std::int32_t>(OpId::kLayout));
    EXPECT_EQ(reported.rank, 3);
    // One of the bad slots (the first to report wins): its id and its token.
    bool named = false;
    for (std::int64_t i = 0; i < T * c.num_topk; ++i)
      named |= topk[i] != valid[i] && reported.expected == topk[i] && reported.observed == i / c.num_topk;
    EXPECT_TRUE(named) << "reported id " << reported.expected << " token " << reported.observed;
  }

  EXPECT_EQ(download<std::int32_t>(per_rank.view()), expected.num_tokens_per_rank);
  EXPECT_EQ(download<std::int32_t>(per_domain.view()), expected.num_tokens_per_domain);
  EXPECT_EQ(download<std::int32_t>(per_expert.view()), expected.num_tokens_per_expert);
  EXPECT_EQ(download<std::uint8_t>(in_rank.view()), expected.is_token_in_rank);
}

TEST(LayoutKernel, RankBitsUpTo64Ranks) {
  run_kernel_case({8, 8, 32, 8, 4096, 0.05, 0, false}, 1);
  run_kernel_case({64, 8, 4, 8, 3000, 0.1, 0, true}, 2);
  run_kernel_case({64, 64, 2, 13, 1000, 0.2, 5, false}, 3);  // two load groups, masked ranks
  run_kernel_case({1, 1, 256, 8, 257, 0.0, 0, false}, 4);
}

TEST(LayoutKernel, LookBackBeyond64Ranks) {
  run_kernel_case({65, 5, 3, 8, 2000, 0.1, 0, false}, 5);
  run_kernel_case({72, 72, 2, 9, 1500, 0.1, 7, true}, 6);   // two load groups, masked ranks
  run_kernel_case({128, 8, 2, 8, 4096, 0.05, 0, false}, 7);
  run_kernel_case({256, 8, 1, 16, 700, 0.3, 3, false}, 8);  // one expert per rank: domains repeat
}

TEST(LayoutKernel, IdsOutOfRangeAreReportedAndSkipped) {
  run_kernel_case({8, 8, 32, 8, 1000, 0.05, 0, false, 9}, 11);
  run_kernel_case({8, 8, 32, 8, 1000, 0.05, 3, true, 5}, 12);
  run_kernel_case({72, 8, 2, 9, 500, 0.05, 5, false, 7}, 13);  // look-back form
}

TEST(LayoutKernel, ExpertCountsBeyondTheSharedHistogram) {
  run_kernel_case({8, 8, 1100, 8, 2048, 0.05, 0, false}, 9);   // 8800 experts
  run_kernel_case({72, 8, 128, 8, 1024, 0.05, 4, true}, 10);  // 9216 experts, look-back form
}

}  // namespace
}  // namespace epcomm::test
