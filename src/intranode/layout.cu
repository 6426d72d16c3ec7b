// get_dispatch_layout: per-rank, per-domain and per-expert token counts and the token-to-rank
// mask, from topk_idx (SPEC "Layout").
//
// One thread per token; it loads the token's top-k indices together before it counts them. Each
// block accumulates its counts in shared memory and adds them to the global counts (zeroed by the
// caller, in one memset) once, so global atomics scale with blocks, not tokens. (One block taking
// every token would save the memset but is compute-bound: 30.6 us for ht-dsv3's 4096 tokens,
// results/...-s11-1gpu-ncu-layout-one-block-3c86ae7.txt.)
#include <cstdint>

#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/fast_divisor.hpp"
#include "core/func_attributes.hpp"
#include "core/pdl.cuh"
#include "core/wait.cuh"
#include "intranode/layout_args.hpp"

namespace epcomm {

namespace {

constexpr int kLayoutThreads = 128;
// Per-expert counts go through shared memory up to this many experts, straight to global memory
// beyond (48 KiB of int32 histograms leaves room for the rank and domain counts).
constexpr int kMaxSharedExperts = 8192;
// Up to this many ranks, a token's ranks and domains seen so far are bits of a register.
constexpr int kMaskRanks = 64;
// Top-k indices of one token a thread loads together.
constexpr int kSlotGroup = 8;

// Reports an expert index out of range. Out of line: the hot loop stays small (a kernel whose
// code runs once per warp is bound by fetching it: ncu's top stall here was `no_instructions`).
__device__ __noinline__ void report_invalid_expert(DeviceStatus* status, int rank, std::int64_t expert,
                                                   std::int64_t token) {
  report_failure(status, StatusCode::kInvalidExpert, OpId::kLayout, CounterId::kNone, rank, -1, expert,
                 token);
}

// kRankBits: R <= kMaskRanks, a token's ranks and domains seen so far are bits of a register;
// otherwise they are found by looking back over its earlier slots (one instantiation each, so the
// common one carries no code of the other).
template <typename Index, bool kRankBits>
__global__ void __launch_bounds__(kLayoutThreads) dispatch_layout_kernel(LayoutArgs args) {
  pdl_entry();
  extern __shared__ std::int32_t smem[];
  const int R = args.num_ranks, G = args.ranks_per_domain, E = args.num_experts;
  const int num_domains = R / G;
  const bool shared_experts = E <= kMaxSharedExperts;
  std::int32_t* rank_counts = smem;
  std::int32_t* domain_counts = rank_counts + R;
  std::int32_t* expert_counts = domain_counts + num_domains;
  const int smem_entries = R + num_domains + (shared_experts ? E : 0);
  const std::int64_t token = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const Index* row = static_cast<const Index*>(args.topk_idx) + token * args.num_topk;
  // A token's indices are loaded kSlotGroup at a time, then counted: one memory round trip per
  // group, not one per slot (each slot's count waits for its index). The first group's loads go
  // out before the block barrier below, with the mask's: their round trips overlap.
  std::int64_t ids[kSlotGroup];
  auto load_group = [&](int first) {
#pragma unroll
    for (int j = 0; j < kSlotGroup; ++j)
      ids[j] = token < args.num_tokens && first + j < args.num_topk
                   ? static_cast<std::int64_t>(row[first + j])
                   : -1;
  };
  load_group(0);
  // kRankBits: bit r of the block's mask word is rank r's mask (read here once, not once per slot
  // behind the slot's index).
  __shared__ std::uint32_t masked_words[kMaskRanks / 32];
  if constexpr (kRankBits) {
    static_assert(kLayoutThreads >= kMaskRanks, "whole warps read the mask");
    if (threadIdx.x < kMaskRanks) {
      const int r = static_cast<int>(threadIdx.x);
      const unsigned bits =
          __ballot_sync(0xffffffffu, args.masked != nullptr && r < R && args.masked[r] != 0);
      if (r % 32 == 0) masked_words[r / 32] = bits;
    }
  }
  for (int i = threadIdx.x; i < smem_entries; i += blockDim.x) smem[i] = 0;
  __syncthreads();

  if (token < args.num_tokens) {
    const FastDivisor experts_per_rank(E / R), ranks_per_domain(G);
    std::uint64_t rank_mask = 0, domain_mask = 0;
    bool* in_rank = args.is_token_in_rank + token * R;
    if constexpr (!kRankBits)
      for (int r = 0; r < R; ++r) in_rank[r] = false;
    for (int first = 0; first < args.num_topk; first += kSlotGroup) {
      if (first > 0) load_group(first);
#pragma unroll
      for (int j = 0; j < kSlotGroup; ++j) {
        const std::int64_t expert = ids[j];
        if (expert == -1) continue;
        if (expert < -1 || expert >= E) {
          report_invalid_expert(args.status, args.rank, expert, token);
          continue;
        }
        const int e = static_cast<int>(expert);
        const int rank = experts_per_rank.divide(e), domain = ranks_per_domain.divide(rank);
        // A masked rank holds no experts: its slots are -1 (SPEC "Rank masking").
        if constexpr (kRankBits) {
          if ((masked_words[rank / 32] >> (rank % 32) & 1u) != 0) continue;
        } else if (args.masked != nullptr && args.masked[rank] != 0) {
          continue;
        }
        if (shared_experts)  // two atomics, not one through a generic address
          atomicAdd(&expert_counts[e], 1);
        else
          atomicAdd(&args.num_tokens_per_expert[e], 1);
        // A token counts once per rank and once per domain however many of its experts live
        // there: at the first slot that reaches that rank (domain).
        bool rank_seen = false, domain_seen = false;
        if constexpr (kRankBits) {
          rank_seen = (rank_mask >> rank & 1u) != 0;
          domain_seen = (domain_mask >> domain & 1u) != 0;
          rank_mask |= std::uint64_t{1} << rank;
          domain_mask |= std::uint64_t{1} << domain;
        } else {
#pragma unroll 1
          for (int prev = 0; prev < first + j; ++prev) {
            const std::int64_t p = static_cast<std::int64_t>(row[prev]);
            if (p < 0 || p >= E) continue;
            const int r = experts_per_rank.divide(static_cast<int>(p));
            if (args.masked != nullptr && args.masked[r] != 0) continue;
            rank_seen |= r == rank;
            domain_seen |= ranks_per_domain.divide(r) == domain;
          }
          if (!rank_seen) in_rank[rank] = true;
        }
        if (!rank_seen) atomicAdd(&rank_counts[rank], 1);
        if (!domain_seen) atomicAdd(&domain_counts[domain], 1);
      }
    }
    if constexpr (kRankBits)
      for (int r = 0; r < R; ++r) in_rank[r] = (rank_mask >> r & 1u) != 0;
  }
  __syncthreads();

  for (int i = threadIdx.x; i < R; i += blockDim.x)
    if (rank_counts[i] != 0) atomicAdd(&args.num_tokens_per_rank[i], rank_counts[i]);
  for (int i = threadIdx.x; i < num_domains; i += blockDim.x)
    if (domain_counts[i] != 0) atomicAdd(&args.num_tokens_per_domain[i], domain_counts[i]);
  if (shared_experts)
    for (int i = threadIdx.x; i < E; i += blockDim.x)
      if (expert_counts[i] != 0) atomicAdd(&args.num_tokens_per_expert[i], expert_counts[i]);
}

}  // namespace

void launch_dispatch_layout(const LayoutArgs& args, void* stream_ptr) {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int num_domains = args.num_ranks / args.ranks_per_domain;
  if (args.num_tokens == 0) return;
  const int shared_entries =
      args.num_ranks + num_domains + (args.num_experts <= kMaxSharedExperts ? args.num_experts : 0);
  const std::size_t smem_bytes = sizeof(std::int32_t) * static_cast<std::size_t>(shared_entries);
  EPCOMM_REQUIRE(smem_bytes <= 48 * 1024, ErrorCategory::kInternal, "layout: ", smem_bytes,
                 " bytes of shared counts exceed 48 KiB (num_ranks ", args.num_ranks, ")");
  const auto blocks = static_cast<unsigned>((args.num_tokens + kLayoutThreads - 1) / kLayoutThreads);
  // The smallest shared-memory carveout that fits (notify's is 8 KiB): left to choose, the driver
  // gave this kernel 64 KiB (results/...-s11-1gpu-ncu-details-layout-*), so the SMs change carveout
  // between it and the kernels around it.
  auto launch = [&](auto kernel) {
    raise_func_attribute(reinterpret_cast<const void*>(kernel),
                         cudaFuncAttributePreferredSharedMemoryCarveout, 0);
    launch_kernel(Launch::kPdl, kernel, blocks, kLayoutThreads, smem_bytes, stream, args);
  };
  const bool rank_bits = args.num_ranks <= kMaskRanks;
  if (args.topk_is_int32 && rank_bits)
    launch(dispatch_layout_kernel<std::int32_t, true>);
  else if (args.topk_is_int32)
    launch(dispatch_layout_kernel<std::int32_t, false>);
  else if (rank_bits)
    launch(dispatch_layout_kernel<std::int64_t, true>);
  else
    launch(dispatch_layout_kernel<std::int64_t, false>);
}

}  // namespace epcomm
