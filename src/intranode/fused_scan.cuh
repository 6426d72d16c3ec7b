// notify's send scan in the layout blocks of the fused preamble (ht_layout_notify.cu; bench/NOTES.md
// 11.49): each block places its own tokens among this rank's rows to each destination, so that
// notify's block starts at the exchange.
//
// A block takes its tokens by ticket (the order the blocks start), so it only ever waits for blocks
// already running. It publishes its rows to each destination (its shared rank counts), then looks
// back over the tickets before it, 32 at a time and nearest first, down to one that published its
// inclusive sum (the rows of every ticket up to it); it publishes its own inclusive sum, then
// stores its tokens' send slots and the starts of the channels they open. notify reads the last
// ticket's inclusive sums (the totals) and the channel starts (copy_scan, ht_notify_block.cuh).
// Definitions in an unnamed namespace, one private copy per including translation unit.
#pragma once

#include <cstdint>

#include "core/fast_divisor.hpp"
#include "core/ptx.cuh"
#include "core/wait.cuh"
#include "intranode/ht_args.hpp"
#include "intranode/layout_block.cuh"
#include "intranode/scan_board.cuh"

namespace epcomm {

namespace {

// The word at `p` once it carries `tag` (poll_until, wait.cuh). A block only waits for tickets drawn
// before its own, which are running or done; a wait that still runs out (a broken device) is
// recorded as notify's timeout on this rank and returns what it saw.
__device__ std::uint64_t wait_tagged(const std::uint64_t* p, std::uint32_t tag, const DomainView& v) {
  auto look = [p] { return ptx::ld_relaxed_gpu(p); };
  auto reached = [tag](std::uint64_t w) { return BlockRows::tagged(w, tag); };
  std::uint64_t w = look();
  if (!reached(w))
    poll_until(look, reached, w, WaitBound{v.timeout_ns, v.status, v.rank}, OpId::kNotify,
               CounterId::kCountsReady, v.rank, static_cast<std::int64_t>(tag));
  return w;
}

// Rows to destination d of the tickets before `ticket`: one warp, its lanes on 32 tickets at a time,
// nearest first, down to the nearest that published its inclusive sum.
__device__ std::int32_t rows_before(const ScanBoard& board, int ticket, int d, const DomainView& v) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  std::int32_t sum = 0;
  for (int top = ticket - 1; top >= 0; top -= 32) {
    const int k = top - lane;
    const std::uint64_t w = k >= 0 ? wait_tagged(board.at(k, d), board.tag, v) : 0;
    const unsigned inclusive = __ballot_sync(0xffffffffu, k >= 0 && BlockRows::inclusive(w));
    const int stop = inclusive != 0 ? __ffs(static_cast<int>(inclusive)) - 1 : 31;  // the nearest one
    sum += static_cast<std::int32_t>(__reduce_add_sync(
        0xffffffffu, k >= 0 && lane <= stop ? static_cast<unsigned>(BlockRows::rows(w)) : 0u));
    if (inclusive != 0) break;
  }
  return sum;
}

// The block's share of notify's scan, every thread of the block, after layout_by_slot_block: its
// tokens are kSlotThreads / kGroup from ticket * that; `ranks`: the thread's token's ranks (what
// layout_by_slot_block returned); `rank_rows`: the block's rows to each rank (its shared counts,
// final once layout_by_slot_block returned). Stores send_slot for its tokens (rows to d before the
// token, or -1) and chunk_start[d][c] for each channel c one of its tokens opens; publishes its
// inclusive sums. Masked ranks are in no token's ranks: no rows go to them. `looked_back()` is
// called by every thread once the block has its rows before it (the trace's point).
template <int kGroup, typename Point>
__device__ void scan_block(const HtNotifyArgs& a, const ScanBoard& board, int ticket, std::uint64_t ranks,
                           const std::int32_t* rank_rows, Point&& looked_back) {
  constexpr int kTokens = kSlotThreads / kGroup, kWords = kTokens / 32;
  static_assert(kWords >= 1 && kTokens % 32 == 0, "a block's tokens are whole words of bits");
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, C = a.num_channels, tpc = a.tokens_per_channel;
  const int T = static_cast<int>(a.num_tokens);  // at most 2^31 - 1 (plan_ht_dispatch)
  const int t0 = ticket * kTokens, n = min(kTokens, max(0, T - t0));
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  __shared__ std::uint64_t token_ranks[kTokens];
  __shared__ std::uint32_t goes_to[kMaskRanks][kWords];  // bit i of word q: token 32 q + i goes to d
  __shared__ std::int32_t before_block[kMaskRanks];      // rows to d of the tickets before this one
  // Its own rows first, so that the blocks after it can sum them while it looks back (ticket 0's are
  // inclusive already).
  for (int d = tid; d < G; d += blockDim.x)
    ptx::st_relaxed_gpu(board.at(ticket, d), BlockRows::word(board.tag, ticket == 0, rank_rows[d]));
  if (tid % kGroup == 0) token_ranks[tid / kGroup] = ranks;
  __syncthreads();
  for (int d = warp; d < G; d += kSlotThreads / 32) {
    const std::int32_t before = ticket > 0 ? rows_before(board, ticket, d, v) : 0;
#pragma unroll
    for (int q = 0; q < kWords; ++q) {
      const unsigned bits = __ballot_sync(0xffffffffu, (token_ranks[32 * q + lane] >> d & 1u) != 0);
      if (lane == 0) goes_to[d][q] = bits;
    }
    if (lane == 0) {
      before_block[d] = before;
      if (ticket > 0)
        ptx::st_relaxed_gpu(board.at(ticket, d), BlockRows::word(board.tag, true, before + rank_rows[d]));
    }
  }
  __syncthreads();
  looked_back();
  // (token, d) entries in send_slot's order, so that a warp's stores are whole rows.
  const FastDivisor by_rank = a.by_domain_rank, by_channel = a.channel_of;
  for (int i = tid; i < n * G; i += blockDim.x) {
    const int t = by_rank.divide(i), d = i - t * G;
    const int q = t / 32, bit = t % 32;
    std::int32_t place = before_block[d] + __popc(goes_to[d][q] & ((1u << bit) - 1u));
#pragma unroll
    for (int j = 0; j < kWords - 1; ++j)
      if (j < q) place += __popc(goes_to[d][j]);
    const int token = t0 + t;
    a.send_slot[static_cast<std::int64_t>(token) * G + d] = (goes_to[d][q] >> bit & 1u) != 0 ? place : -1;
    const int c = by_channel.divide(token);
    if (c * tpc == token) a.chunk_start[d * (C + 1) + c] = place;
  }
}

}  // namespace

}  // namespace epcomm
