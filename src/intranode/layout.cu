// get_dispatch_layout: per-rank, per-domain and per-expert token counts and the token-to-rank
// mask, from topk_idx (SPEC "Layout").
//
// Up to 64 ranks (layout_by_slot_kernel): a lane per top-k slot, kGroup lanes (8 or 32) per token,
// 1,024 threads a block. A slot finds its rank; the token's first slot on a rank (domain) counts
// it, found by __match_any_sync among its group; the group's rank bits are OR-ed by shuffles and
// its lanes store the token's row of is_token_in_rank. A warp's path is one slot's work, not a
// token's eight (with a thread per token, 128-thread blocks ran ~750 instructions a warp at one
// warp per scheduler: 3 us of SM time for 4,096 tokens, bench/NOTES.md 11.41).
// More ranks (layout_lookback_kernel): one thread per token; it loads the token's top-k indices
// together before it counts them, and finds a rank's first slot by looking back over the earlier
// ones.
// Each block accumulates its counts in shared memory and adds them to the global counts (zeroed by
// the caller, in one memset) once, so global atomics scale with blocks, not tokens. (One block
// taking every token would save the memset but is compute-bound: 30.6 us for ht-dsv3's 4096
// tokens, results/...-s11-1gpu-ncu-layout-one-block-3c86ae7.txt.)
#include <cstdint>

#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/fast_divisor.hpp"
#include "core/func_attributes.hpp"
#include "core/pdl.cuh"
#include "core/wait.cuh"
#include "intranode/layout_args.hpp"
#include "intranode/layout_block.cuh"

namespace epcomm {

namespace {

constexpr int kLayoutThreads = 128;
// Top-k indices of one token a thread loads together.
constexpr int kSlotGroup = 8;

template <typename Index, int kGroup>
__global__ void __launch_bounds__(kSlotThreads) layout_by_slot_kernel(LayoutArgs args) {
  pdl_entry();
  extern __shared__ std::int32_t smem[];
  layout_by_slot_block<Index, kGroup>(args, smem, blockIdx.x);
}

// R > kMaskRanks: a thread per token; a rank's (domain's) first slot is found by looking back over
// the token's earlier slots.
template <typename Index>
__global__ void __launch_bounds__(kLayoutThreads) layout_lookback_kernel(LayoutArgs args) {
  pdl_entry();
  extern __shared__ std::int32_t smem[];
  const int R = args.num_ranks, E = args.num_experts, num_domains = args.num_domains;
  const SharedCounts counts(smem, R, num_domains, E);
  const std::int64_t token = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const Index* row = static_cast<const Index*>(args.topk_idx) + token * args.num_topk;
  // A token's indices are loaded kSlotGroup at a time, then counted: one memory round trip per
  // group, not one per slot (each slot's count waits for its index). The first group's loads go
  // out before the block barrier below: their round trips overlap the zeroing.
  std::int64_t ids[kSlotGroup];
  auto load_group = [&](int first) {
#pragma unroll
    for (int j = 0; j < kSlotGroup; ++j)
      ids[j] = token < args.num_tokens && first + j < args.num_topk
                   ? static_cast<std::int64_t>(row[first + j])
                   : -1;
  };
  load_group(0);
  for (int i = threadIdx.x; i < counts.entries; i += blockDim.x) smem[i] = 0;
  __syncthreads();

  if (token < args.num_tokens) {
    const FastDivisor experts_per_rank = args.rank_of_expert, ranks_per_domain = args.domain_of_rank;
    bool* in_rank = args.is_token_in_rank + token * R;
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
        if (args.masked != nullptr && args.masked[rank] != 0) continue;
        if (E <= kMaxSharedExperts)  // two atomics, not one through a generic address
          atomicAdd(&counts.expert[e], 1);
        else
          atomicAdd(&args.num_tokens_per_expert[e], 1);
        // A token counts once per rank and once per domain however many of its experts live
        // there: at the first slot that reaches that rank (domain).
        bool rank_seen = false, domain_seen = false;
#pragma unroll 1
        for (int prev = 0; prev < first + j; ++prev) {
          const std::int64_t p = static_cast<std::int64_t>(row[prev]);
          if (p < 0 || p >= E) continue;
          const int r = experts_per_rank.divide(static_cast<int>(p));
          if (args.masked != nullptr && args.masked[r] != 0) continue;
          rank_seen |= r == rank;
          domain_seen |= ranks_per_domain.divide(r) == domain;
        }
        if (!rank_seen) {
          in_rank[rank] = true;
          atomicAdd(&counts.rank[rank], 1);
        }
        if (!domain_seen) atomicAdd(&counts.domain[domain], 1);
      }
    }
  }
  __syncthreads();
  counts.flush(args, R, num_domains, E);
}

}  // namespace

void launch_dispatch_layout(const LayoutArgs& given, void* stream_ptr) {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const LayoutArgs args = with_divisors(given);
  if (args.num_tokens == 0) return;
  const int shared_entries =
      args.num_ranks + args.num_domains + (args.num_experts <= kMaxSharedExperts ? args.num_experts : 0);
  const std::size_t smem_bytes = sizeof(std::int32_t) * static_cast<std::size_t>(shared_entries);
  EPCOMM_REQUIRE(smem_bytes <= 48 * 1024, ErrorCategory::kInternal, "layout: ", smem_bytes,
                 " bytes of shared counts exceed 48 KiB (num_ranks ", args.num_ranks, ")");
  // The smallest shared-memory carveout that fits (notify's is 8 KiB): left to choose, the driver
  // gave this kernel 64 KiB (results/...-s11-1gpu-ncu-details-layout-*), so the SMs change carveout
  // between it and the kernels around it.
  auto launch = [&](auto kernel, int threads, std::int64_t threads_needed) {
    raise_func_attribute(reinterpret_cast<const void*>(kernel),
                         cudaFuncAttributePreferredSharedMemoryCarveout, 0);
    const auto blocks = static_cast<unsigned>((threads_needed + threads - 1) / threads);
    launch_kernel(Launch::kPdl, kernel, blocks, threads, smem_bytes, stream, args);
  };
  if (args.num_ranks <= kMaskRanks) {
    // A lane per slot: 8 lanes a token up to 8 slots, 32 beyond (SPEC: at most 32).
    EPCOMM_REQUIRE(args.num_topk >= 1 && args.num_topk <= 32, ErrorCategory::kInternal,
                   "layout: ", args.num_topk, " top-k slots");
    const int group = args.num_topk <= 8 ? 8 : 32;
    const std::int64_t threads_needed = args.num_tokens * group;
    if (args.topk_is_int32 && group == 8)
      launch(layout_by_slot_kernel<std::int32_t, 8>, kSlotThreads, threads_needed);
    else if (args.topk_is_int32)
      launch(layout_by_slot_kernel<std::int32_t, 32>, kSlotThreads, threads_needed);
    else if (group == 8)
      launch(layout_by_slot_kernel<std::int64_t, 8>, kSlotThreads, threads_needed);
    else
      launch(layout_by_slot_kernel<std::int64_t, 32>, kSlotThreads, threads_needed);
  } else if (args.topk_is_int32) {
    launch(layout_lookback_kernel<std::int32_t>, kLayoutThreads, args.num_tokens);
  } else {
    launch(layout_lookback_kernel<std::int64_t>, kLayoutThreads, args.num_tokens);
  }
}

}  // namespace epcomm
