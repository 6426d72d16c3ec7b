// get_dispatch_layout: per-rank, per-domain and per-expert token counts and the token-to-rank
// mask, from topk_idx (SPEC "Layout").
//
// Each thread takes tokens (a stride of the grid apart) and loads a token's top-k indices together
// before it counts them (one memory round trip, not one per slot). A block counts in shared memory;
// one block (up to kLayoutOneBlockTokens tokens) then writes the counts, many blocks add them to
// counts the caller zeroed, so global atomics scale with blocks, not tokens.
#include <cstdint>

#include "kernels/layout_args.hpp"
#include "kernels/wait.cuh"
#include "runtime/check.hpp"
#include "runtime/cuda_check.hpp"

namespace epcomm {

namespace {

constexpr int kManyBlocksThreads = 128;
constexpr int kOneBlockThreads = 1024;
// Up to this many ranks, a token's ranks and domains seen so far are bits of a register.
constexpr int kMaskRanks = 64;
// Top-k indices of one token a thread loads before it counts them.
constexpr int kSlotGroup = 8;

struct BlockCounts {
  std::int32_t* rank;
  std::int32_t* domain;
  std::int32_t* expert;  // shared, or the global counts (more experts than shared memory holds)
};

// Counts token `token` and writes its row of is_token_in_rank.
template <typename Index>
__device__ void count_token(const LayoutArgs& args, std::int64_t token, const BlockCounts& counts) {
  const int R = args.num_ranks, G = args.ranks_per_domain, E = args.num_experts;
  const Index* row = static_cast<const Index*>(args.topk_idx) + token * args.num_topk;
  const int experts_per_rank = E / R;
  const bool masks = R <= kMaskRanks;
  std::uint64_t rank_mask = 0, domain_mask = 0;
  bool* in_rank = args.is_token_in_rank + token * R;
  if (!masks)
    for (int r = 0; r < R; ++r) in_rank[r] = false;
  for (int first = 0; first < args.num_topk; first += kSlotGroup) {
    std::int64_t ids[kSlotGroup];
#pragma unroll
    for (int j = 0; j < kSlotGroup; ++j)
      ids[j] = first + j < args.num_topk ? static_cast<std::int64_t>(row[first + j]) : -1;
#pragma unroll
    for (int j = 0; j < kSlotGroup; ++j) {
      const std::int64_t expert = ids[j];
      if (expert == -1) continue;
      if (expert < -1 || expert >= E) {
        report_failure(args.status, StatusCode::kInvalidExpert, OpId::kLayout, CounterId::kNone, args.rank,
                       -1, expert, token);
        continue;
      }
      const int e = static_cast<int>(expert);
      atomicAdd(&counts.expert[e], 1);
      const int rank = e / experts_per_rank, domain = rank / G;
      // A token counts once per rank and once per domain however many of its experts live there:
      // at the first slot that reaches that rank (domain).
      bool rank_seen = false, domain_seen = false;
      if (masks) {
        rank_seen = (rank_mask >> rank & 1u) != 0;
        domain_seen = (domain_mask >> domain & 1u) != 0;
        rank_mask |= std::uint64_t{1} << rank;
        domain_mask |= std::uint64_t{1} << domain;
      } else {
        for (int prev = 0; prev < first + j; ++prev) {
          const std::int64_t p = static_cast<std::int64_t>(row[prev]);
          if (p < 0 || p >= E) continue;
          const int r = static_cast<int>(p) / experts_per_rank;
          rank_seen |= r == rank;
          domain_seen |= r / G == domain;
        }
        if (!rank_seen) in_rank[rank] = true;
      }
      if (!rank_seen) atomicAdd(&counts.rank[rank], 1);
      if (!domain_seen) atomicAdd(&counts.domain[domain], 1);
    }
  }
  if (masks)
    for (int r = 0; r < R; ++r) in_rank[r] = (rank_mask >> r & 1u) != 0;
}

// The block's count `n` into the global count `out`: written (one block) or added.
__device__ __forceinline__ void publish_count(const LayoutArgs& args, std::int32_t* out, std::int32_t n) {
  if (!args.add_counts)
    *out = n;
  else if (n != 0)
    atomicAdd(out, n);
}

template <typename Index>
__global__ void __launch_bounds__(kOneBlockThreads) dispatch_layout_kernel(LayoutArgs args) {
  extern __shared__ std::int32_t smem[];
  const int R = args.num_ranks, G = args.ranks_per_domain, E = args.num_experts;
  const int num_domains = R / G;
  const bool shared_experts = E <= kLayoutSharedExperts;
  const BlockCounts counts{smem, smem + R,
                           shared_experts ? smem + R + num_domains : args.num_tokens_per_expert};
  const int smem_entries = R + num_domains + (shared_experts ? E : 0);
  for (int i = threadIdx.x; i < smem_entries; i += blockDim.x) smem[i] = 0;
  __syncthreads();

  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t token = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       token < args.num_tokens; token += stride)
    count_token<Index>(args, token, counts);
  __syncthreads();

  for (int i = threadIdx.x; i < R; i += blockDim.x)
    publish_count(args, &args.num_tokens_per_rank[i], counts.rank[i]);
  for (int i = threadIdx.x; i < num_domains; i += blockDim.x)
    publish_count(args, &args.num_tokens_per_domain[i], counts.domain[i]);
  if (shared_experts)
    for (int i = threadIdx.x; i < E; i += blockDim.x)
      publish_count(args, &args.num_tokens_per_expert[i], counts.expert[i]);
}

}  // namespace

void launch_dispatch_layout(const LayoutArgs& args, void* stream_ptr) {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int num_domains = args.num_ranks / args.ranks_per_domain;
  const bool shared_experts = args.num_experts <= kLayoutSharedExperts;
  EPCOMM_REQUIRE(args.add_counts == layout_adds_counts(args.num_tokens, args.num_experts),
                 ErrorCategory::kInternal, "layout: add_counts disagrees with layout_adds_counts");
  if (args.add_counts && args.num_tokens == 0) return;  // the zeroed counts are the answer
  const int shared_entries = args.num_ranks + num_domains + (shared_experts ? args.num_experts : 0);
  const std::size_t smem_bytes = sizeof(std::int32_t) * static_cast<std::size_t>(shared_entries);
  EPCOMM_REQUIRE(smem_bytes <= 48 * 1024, ErrorCategory::kInternal, "layout: ", smem_bytes,
                 " bytes of shared counts exceed 48 KiB (num_ranks ", args.num_ranks, ")");
  // One block writes every count (no memset, no global atomics), or a block per 128 tokens adds.
  const int threads = args.add_counts ? kManyBlocksThreads : kOneBlockThreads;
  const auto blocks =
      args.add_counts ? static_cast<unsigned>((args.num_tokens + kManyBlocksThreads - 1) / kManyBlocksThreads)
                      : 1u;
  if (args.topk_is_int32)
    dispatch_layout_kernel<std::int32_t><<<blocks, threads, smem_bytes, stream>>>(args);
  else
    dispatch_layout_kernel<std::int64_t><<<blocks, threads, smem_bytes, stream>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
