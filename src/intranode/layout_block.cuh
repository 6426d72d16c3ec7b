// The layout kernel's pieces shared by get_dispatch_layout's kernels (layout.cu) and the fused
// layout-and-notify launch of a dispatch given topk_idx alone (ht_layout_notify.cu): the block's
// shared counts and the by-slot block (up to kMaskRanks ranks; layout.cu's header says how it
// works). Definitions in an unnamed namespace, one private copy per including translation unit.
#pragma once

#include <cstdint>

#include "core/device_status.hpp"
#include "core/fast_divisor.hpp"
#include "core/wait.cuh"
#include "intranode/layout_args.hpp"

namespace epcomm {

namespace {

// Per-expert counts go through shared memory up to this many experts, straight to global memory
// beyond (48 KiB of int32 histograms leaves room for the rank and domain counts).
constexpr int kMaxSharedExperts = 8192;
// Up to this many ranks, a token's ranks and domains seen so far are bits of a register.
constexpr int kMaskRanks = 64;
// Reports an expert index out of range. Out of line: the hot loop stays small (a kernel whose
// code runs once per warp is bound by fetching it: ncu's top stall here was `no_instructions`).
__device__ __noinline__ void report_invalid_expert(DeviceStatus* status, int rank, std::int64_t expert,
                                                   std::int64_t token) {
  report_failure(status, StatusCode::kInvalidExpert, OpId::kLayout, CounterId::kNone, rank, -1, expert,
                 token);
}

constexpr int kSlotThreads = 1024;

// The block's shared counts (rank, domain, expert when E <= kMaxSharedExperts), zeroed.
struct SharedCounts {
  std::int32_t *rank, *domain, *expert;
  int entries;
  __device__ SharedCounts(std::int32_t* smem, int R, int num_domains, int E) {
    rank = smem;
    domain = rank + R;
    expert = domain + num_domains;
    entries = R + num_domains + (E <= kMaxSharedExperts ? E : 0);
  }
  // Adds the block's counts to the global ones (after a block barrier); the rank and domain counts
  // only where their outputs are given (the fused layout-and-notify launch needs none).
  __device__ void flush(const LayoutArgs& args, int R, int num_domains, int E) const {
    if (args.num_tokens_per_rank != nullptr)
      for (int i = threadIdx.x; i < R; i += blockDim.x)
        if (rank[i] != 0) atomicAdd(&args.num_tokens_per_rank[i], rank[i]);
    if (args.num_tokens_per_domain != nullptr)
      for (int i = threadIdx.x; i < num_domains; i += blockDim.x)
        if (domain[i] != 0) atomicAdd(&args.num_tokens_per_domain[i], domain[i]);
    if (E <= kMaxSharedExperts)
      for (int i = threadIdx.x; i < E; i += blockDim.x)
        if (expert[i] != 0) atomicAdd(&args.num_tokens_per_expert[i], expert[i]);
  }
};

// R <= kMaskRanks. Thread g of the launch takes slot g % kGroup of token g / kGroup (kGroup >=
// num_topk; the lanes past num_topk hold no expert), with `block` in place of blockIdx.x (the fused
// launch takes its blocks' tokens in the order they start).
// `smem`: the block's shared counts (SharedCounts' entries). Returns the thread's token's ranks (bit
// r: rank r, masked ranks never), the same in every lane of its group; 0 past the last token.
template <typename Index, int kGroup>
__device__ std::uint64_t layout_by_slot_block(const LayoutArgs& args, std::int32_t* smem,
                                              std::int64_t block) {
  static_assert(kGroup == 8 || kGroup == 32, "a token's lanes are an aligned part of a warp");
  const int R = args.num_ranks, E = args.num_experts, num_domains = args.num_domains;
  const SharedCounts counts(smem, R, num_domains, E);
  const std::int64_t thread = block * blockDim.x + threadIdx.x;
  const std::int64_t token = thread / kGroup;
  const int slot = static_cast<int>(thread % kGroup), lane = static_cast<int>(threadIdx.x % 32);
  // The slot's index goes out before the block barrier, with the mask's: their round trips overlap.
  const std::int64_t expert =
      token < args.num_tokens && slot < args.num_topk
          ? static_cast<std::int64_t>(static_cast<const Index*>(args.topk_idx)[token * args.num_topk + slot])
          : -1;
  __shared__ std::uint32_t masked_words[kMaskRanks / 32];  // bit r: rank r is masked
  if (threadIdx.x < kMaskRanks) {
    const int r = static_cast<int>(threadIdx.x);
    const unsigned bits = __ballot_sync(0xffffffffu, args.masked != nullptr && r < R && args.masked[r] != 0);
    if (r % 32 == 0) masked_words[r / 32] = bits;
  }
  for (int i = threadIdx.x; i < counts.entries; i += blockDim.x) smem[i] = 0;
  __syncthreads();

  // This slot's rank, or -1 (no expert, an invalid one, or a masked rank: SPEC "Rank masking").
  int rank = -1;
  if (expert < -1 || expert >= E) {
    report_invalid_expert(args.status, args.rank, expert, token);
  } else if (expert >= 0) {
    const int e = static_cast<int>(expert);
    const int r = args.rank_of_expert.divide(e);
    if ((masked_words[r / 32] >> (r % 32) & 1u) == 0) {
      rank = r;
      if (E <= kMaxSharedExperts)  // two atomics, not one through a generic address
        atomicAdd(&counts.expert[e], 1);
      else
        atomicAdd(&args.num_tokens_per_expert[e], 1);
    }
  }
  // A token counts once per rank and once per domain however many of its experts live there: at
  // its first slot there (the lowest lane of its group with that rank, or domain). The domain
  // counts only where their output is given (the fused launch has one domain and needs none).
  const unsigned group = (kGroup == 32 ? 0xffffffffu : (1u << kGroup) - 1u) << (lane / kGroup * kGroup);
  const unsigned below = (1u << lane) - 1u;
  const unsigned same_rank = __match_any_sync(0xffffffffu, rank) & group;
  if (rank >= 0 && (same_rank & below) == 0) atomicAdd(&counts.rank[rank], 1);
  if (args.num_tokens_per_domain != nullptr) {  // uniform over the launch
    const int domain = rank >= 0 ? args.domain_of_rank.divide(rank) : -1;
    const unsigned same_domain = __match_any_sync(0xffffffffu, domain) & group;
    if (domain >= 0 && (same_domain & below) == 0) atomicAdd(&counts.domain[domain], 1);
  }
  // The token's ranks, in every lane of its group; its lanes store its row of is_token_in_rank.
  std::uint64_t ranks = rank >= 0 ? std::uint64_t{1} << rank : 0;
#pragma unroll
  for (int off = 1; off < kGroup; off <<= 1) ranks |= __shfl_xor_sync(0xffffffffu, ranks, off);
  if (token < args.num_tokens) {
    bool* in_rank = args.is_token_in_rank + token * R;
    for (int r = slot; r < R; r += kGroup) in_rank[r] = (ranks >> r & 1u) != 0;
  }
  __syncthreads();
  counts.flush(args, R, num_domains, E);
  return ranks;
}

}  // namespace

}  // namespace epcomm
