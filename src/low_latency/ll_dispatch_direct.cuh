// Low-latency dispatch when every peer is reached by stores (CUDA IPC), the direct form: the
// receive of each block starts as soon as the rows it copies have landed, not when the grid's last
// block has sent. The default for CUDA IPC: run unless a rank made its Buffer with
// EPCOMM_LL_DIRECT_DISPATCH=0 (LlDispatchArgs::direct; ll_dispatch.cuh picks the form at run time).
// Definitions in an unnamed namespace, one private copy per including translation unit.
//
// Roles. The grid's last L blocks (ll_direct_roles, ll_args.hpp) are list blocks, the others row blocks (a
// grid of one block is both).
//  - A row block b takes the send items (token, 512-channel part) of its warps, as in the staging
//    form (ll_dispatch_send.cuh), and stores beside each item, in each destination, the mask of the
//    token's slots that destination holds, tagged with seq (part_mask: a receiver reads the mask of
//    every token, and one left by an earlier operation names no slot). Then it release-stores seq
//    into rows_done[p][this rank][b] of every peer.
//  - A list block takes experts j, j + L, ... (j: its index among the list blocks). For each
//    (token t, slot k) naming such an expert e, it takes the next place in e's list in the ids'
//    order (token, then slot: the reference's row order; send_places) and stores it with the
//    local expert (ll_pack_place) at tagged_place[p][this rank][t][k] in e's holder; then each
//    expert's count at tagged_count[p][this rank][e] there. Each is an 8-byte word tagged with
//    the operation (ll_tag_word), stored relaxed at system scope: no fence, no signal.
//  - Row block 0 also stores this call's signature and token count in every peer before its flag
//    (whose release covers them).
// Receive, every block, at once (wait_and_scan): wait for block 0's flag of every source s
// (rows_done[p][s][0] >= seq: the signature and token count of s are then in place) and, in row
// block b, for block b's flag of every source; meanwhile scan the counts into the rows' layout
// (scan_tagged_counts: layout_range, recv_count), reading each as soon as its tag is this
// operation's. Then row block b copies the items that block b of each source s sent, with the
// same item numbering (its warp w takes what warp w of b sent): each item's piece goes to every
// row its part mask names (row = expert's first row of s + place, the place read by its tag),
// with its scales; the token's part-0 item writes src_info and token_rows (every slot: its row,
// or -1; tokens past the source's count: -1). Then credits, as in the staging form. Every other
// counter and bound is the staging form's (ll_args.hpp). bench/NOTES.md 11.81 and 11.83 say why
// the lists carry tags rather than a signal (the signal's system-scope fence and its wait cost
// ~1 us on the path at one token).
#pragma once

#include <cstdint>

#include "low_latency/ll_args.hpp"
#include "low_latency/ll_dispatch_recv.cuh"
#include "low_latency/ll_dispatch_send.cuh"
#include "low_latency/ll_sync.cuh"

namespace epcomm {

namespace {

// Which blocks send rows ([0, row_blocks)) and which build lists ([grid - list_blocks, grid)).
struct DirectRoles {
  int list_blocks, row_blocks;
  bool rows, lists;  // this block's
  int list_index;    // among the list blocks (valid when `lists`)
  __device__ explicit DirectRoles(int num_experts) {
    const int grid = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
    const LlDirectRoles split = ll_direct_roles(num_experts, grid);
    list_blocks = split.list_blocks;
    row_blocks = split.row_blocks;
    rows = b < row_blocks;
    list_index = b - (grid - list_blocks);
    lists = list_index >= 0;
  }
};

// Top-k ids each thread of a list block loads before it places any of them.
constexpr int kPlaceSpan = 4;

// A list block's top-k ids of one round of its pass (-1 past the end), loaded before the credit
// wait for the first round: only the places' stores need the credits.
struct PlaceIds {
  std::int64_t id[kPlaceSpan];
};
__device__ __forceinline__ PlaceIds load_place_ids(const LlDispatchArgs& a, int base) {
  const int n = static_cast<int>(a.num_tokens) * a.num_topk;
  PlaceIds ids;
#pragma unroll
  for (int u = 0; u < kPlaceSpan; ++u) {
    const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
    ids.id[u] = i < n ? ll_load_expert(a.topk_idx, a.idx_bytes, i) : -1;
  }
  return ids;
}

// Experts whose places one pass over the top-k ids takes (bounds the shared table below).
constexpr int kPlaceGroup = 64;

// A list block's pass: the places of its experts' selections and their counts, in the holders.
// Places follow the ids' order (token, then slot: the reference's row order), whatever the grid:
// per round (kPlaceSpan ids a thread, id i = base + u * threads + thread), an id's place is its
// expert's selections in earlier rounds, plus those of the round before it in (u, warp, lane)
// order: the lanes before it with the same expert (__match_any_sync), and a per-expert prefix over
// the round's (u, warp) counts. No atomics, three block barriers a round, and a cost that does not
// grow with the experts of the group. Entries outside [-1, E) are reported (by the first list
// block); selections beyond T of one expert (a token naming it twice) are reported and marked
// dropped (-1). A masked holder gets nothing: its experts' slots behave as -1 (SPEC "Rank
// masking"), as the row blocks' routing also has it. `masked[p]`: domain rank p is masked
// (store_mask_copy's, made before the credit wait).
template <typename Peers>
__device__ void send_places(const LlDispatchArgs& a, int parity, std::uint64_t seq, const DirectRoles& roles,
                            const PlaceIds& first, const std::uint8_t* masked, const LlTracer& tracer) {
  // [k][u * warps + warp]: the round's selections of expert k of the group by warp `warp`'s ids of
  // span u, then (after the prefix) the places before them. One expert's entries are adjacent (a
  // warp scans them at once); the row pitch of kCells + 1 puts the entries of one (u, warp) for
  // different experts in different banks (the leaders of one warp store them together).
  constexpr int kCells = kPlaceSpan * kLlWarps;
  static_assert(kCells == 64, "a lane takes two cells of an expert's prefix");
  __shared__ std::int32_t hits[kPlaceGroup][kCells + 1];
  __shared__ std::int32_t filled[kPlaceGroup];  // the group's places taken in earlier rounds
  const LlLayout& l = a.layout;
  const DomainView& v = a.view;
  const int L = roles.list_blocks, j = roles.list_index, me = v.domain_rank;
  const int lane = threadIdx.x % 32, warp = static_cast<int>(threadIdx.x / 32);
  const unsigned lanes_before = (1u << lane) - 1u;
  const int mine = j < l.num_experts ? (l.num_experts - j + L - 1) / L : 0;  // experts j, j + L, ...
  // NOTE: 32-bit indices: T * k <= kLlMaxTokensPerRank * kLlMaxTopk fits.
  const int n = static_cast<int>(a.num_tokens) * a.num_topk;
  for (int g0 = 0; g0 < mine; g0 += kPlaceGroup) {
    const int group = min(kPlaceGroup, mine - g0);  // experts j + (g0 + k) * L, k < group
    if (static_cast<int>(threadIdx.x) < group) filled[threadIdx.x] = 0;
    for (int base = 0; base < n; base += kLlThreads * kPlaceSpan) {
      const PlaceIds ids = base == 0 && g0 == 0 ? first : load_place_ids(a, base);
      for (int c = threadIdx.x; c < kPlaceGroup * (kCells + 1); c += blockDim.x) (&hits[0][0])[c] = 0;
      __syncthreads();         // the table is clear (and `filled` set) before any count goes in
      int k[kPlaceSpan];       // the id's expert within the group, or -1
      int before[kPlaceSpan];  // the lanes before it in its warp with the same expert
#pragma unroll
      for (int u = 0; u < kPlaceSpan; ++u) {
        const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
        const std::int64_t e = ids.id[u];
        if ((e < -1 || e >= l.num_experts) && j == 0 && g0 == 0)
          report_failure(v.status, StatusCode::kInvalidExpert, OpId::kLlDispatch, CounterId::kNone, v.rank,
                         -1, e, i / a.num_topk);
        k[u] = -1;
        if (e >= j && e < l.num_experts) {
          const LlSplit q = ll_split(static_cast<std::int64_t>(e - j), L);
          if (q.rem == 0 && q.quot >= g0 && q.quot - g0 < group) k[u] = q.quot - g0;
        }
        const unsigned same = __match_any_sync(kLlFullMask, k[u]);
        before[u] = __popc(same & lanes_before);
        if (k[u] >= 0 && before[u] == 0) hits[k[u]][u * kLlWarps + warp] = __popc(same);
      }
      __syncthreads();  // the round's counts are in
      if (g0 == 0 && base == 0) tracer.mark(kLlTraceListBinned);
      // Per expert, the exclusive prefix over its cells in (u, warp) order, from `filled`: a warp per
      // expert, lane i taking cells 2i and 2i + 1 (a thread walking 64 cells was ~0.8 us by count).
      for (int kk = warp; kk < group; kk += kLlWarps) {
        const std::int32_t c0 = hits[kk][2 * lane], c1 = hits[kk][2 * lane + 1];
        std::int32_t incl = c0 + c1;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
          const std::int32_t y = __shfl_up_sync(kLlFullMask, incl, off);
          if (lane >= off) incl += y;
        }
        const std::int32_t before_cells = filled[kk] + incl - (c0 + c1);
        hits[kk][2 * lane] = before_cells;
        hits[kk][2 * lane + 1] = before_cells + c0;
        __syncwarp();  // every lane has read filled[kk]
        if (lane == 31) filled[kk] = before_cells + c0 + c1;
      }
      __syncthreads();  // every (u, warp) entry holds the places before it
#pragma unroll
      for (int u = 0; u < kPlaceSpan; ++u) {
        if (k[u] < 0) continue;
        const int e = j + (g0 + k[u]) * L;
        const int holder = l.by_local_experts.divide(e);
        if (masked[holder] != 0) continue;
        const int i = base + u * kLlThreads + static_cast<int>(threadIdx.x);
        const int t = i / a.num_topk;
        const std::int32_t place = hits[k[u]][u * kLlWarps + warp] + before[u];
        // A selection past T (reported below) is marked dropped: the receive skips it.
        const std::int32_t packed =
            place < l.max_tokens ? ll_pack_place(e - holder * l.num_local_experts, place) : kLlDroppedPlace;
        ptx::st_relaxed_sys(
            &l.tagged_place(Peers::target(v, a.workspace, holder), parity, me, t)[i - t * a.num_topk],
            ll_tag_word(static_cast<std::uint32_t>(packed), seq));
      }
      __syncthreads();  // the table is read before the next round clears it
      if (g0 == 0 && base == 0) tracer.mark(kLlTraceListPlaced);
    }
    for (int k = threadIdx.x; k < group; k += blockDim.x) {
      const int e = j + (g0 + k) * L;
      const int holder = l.by_local_experts.divide(e);
      if (masked[holder] != 0) continue;
      std::int32_t n_e = filled[k];
      if (n_e > l.max_tokens) {
        // NOTE: a source owns T rows of each expert; only a token naming an expert twice can exceed
        // them. The extra rows are dropped, never written out of bounds.
        report_failure(v.status, StatusCode::kRegionTooSmall, OpId::kLlDispatch, CounterId::kNone, v.rank,
                       holder, l.max_tokens, n_e);
        n_e = static_cast<std::int32_t>(l.max_tokens);
      }
      ptx::st_relaxed_sys(&l.tagged_count(Peers::target(v, a.workspace, holder), parity, me)[e],
                          ll_tag_word(static_cast<std::uint32_t>(n_e), seq));
    }
    __syncthreads();  // `filled` is read before the next group resets it
  }
}

// This call's signature and token count in every peer's dispatch control block, by row block 0
// before its flag. `masked`: the block's copy of the mask (store_mask_copy).
template <typename Peers>
__device__ __forceinline__ void publish_call(const LlDispatchArgs& a, int parity,
                                             const std::uint8_t* masked) {
  const int me = a.view.domain_rank;
  ll_for_each_peer<Peers>(
      a.view, a.layout, a.workspace, kLlKindDispatch,
      [&](int, LlControl* c) {
        store_signature(&c->signature[parity][me], a.signature);
        c->tokens[parity][me] = a.num_tokens;
      },
      masked);
}

// Every thread of the block, at once: the waits for what this block's receive reads, and the scan
// of the counts (scan_tagged_counts, threads from the first) while they wait. The waits take the
// block's last threads, w = kLlThreads - 1 - thread: w < R waits for block 0's flag of source w,
// then checks its signature and loads its token count into tokens[w] (shared, [R]); in a row
// block b, R <= w < 2R waits for block b's flag of source w - R. (One thread waiting for both
// flags took a round trip more: the second acquire after the first.) False for all when a wait
// failed or a signature differed; else the statistics are added.
__device__ bool wait_and_scan(const LlDispatchArgs& a, int parity, std::uint64_t seq,
                              const DirectRoles& roles, const std::uint8_t* masked, std::int64_t* tokens,
                              const SourceRows& r) {
  const DomainView& v = a.view;
  const LlControl* mine = a.layout.control_of(a.workspace, kLlKindDispatch);
  const int R = v.num_domain_ranks;
  static_assert(2 * kLlMaxRanks <= kLlThreads, "two threads per source");
  const int w = kLlThreads - 1 - static_cast<int>(threadIdx.x);
  bool ok = true;
  if (w < R) {
    const int peer = v.domain_base_rank + w;
    ok = wait_at_least<Polls::kAcquire>(a.layout.rows_done(a.workspace, parity, w, 0), seq, v,
                                        OpId::kLlDispatch, CounterId::kRowsArrived, peer);
    tokens[w] = 0;
    if (ok && masked[w] == 0) {
      ok = signature_matches(&mine->signature[parity][w], a.signature, v, OpId::kLlDispatch, peer);
      const volatile std::int64_t* count = &mine->tokens[parity][w];
      tokens[w] = min(*count, a.layout.max_tokens);
    }
  } else if (w < 2 * R && roles.rows) {
    const int s = w - R;
    ok = wait_at_least<Polls::kAcquire>(
        a.layout.rows_done(a.workspace, parity, s, static_cast<int>(blockIdx.x)), seq, v, OpId::kLlDispatch,
        CounterId::kRowsArrived, v.domain_base_rank + s);
  }
  const bool scanned = scan_tagged_counts(a, parity, seq, r, masked);
  const bool all = __syncthreads_and(ok && scanned);
  if (all) add_scan_stats(a, r);
  return all;
}

// The whole warp: item (t, part) of source s as block b of s sent it, copied into each row of this
// rank its part mask names; for part 0 also src_info and the token's token_rows (every slot).
// Each slot's place is read by its tag: loaded beside the mask and the piece, waited for only when
// it has not landed yet (the piece and the mask came before block b's flag, which was seen).
// The trace's item-ready is stamped before the stores when `first` (the warp's first item).
__device__ void receive_item(const LlDispatchArgs& a, int parity, std::uint64_t seq, const SourceRows& r,
                             int s, int t, int part, const LlTracer& tracer, bool first) {
  const LlLayout& l = a.layout;
  void* ws = a.workspace;
  const int lane = threadIdx.x % 32, R = a.view.num_domain_ranks;
  // Every load first: the mask, the slots' places, the piece and its scales (one round trip). A
  // mask left by an earlier operation (the token was not sent here this time) names no slot.
  const std::uint64_t mask = l.part_mask(ws, parity, s, t)[part];
  const std::uint64_t* place_at = l.tagged_place(ws, parity, s, t) + lane;
  std::uint64_t place_word = lane < a.num_topk ? ptx::ld_relaxed_sys(place_at) : 0;
  const std::int64_t c0 = static_cast<std::int64_t>(part) * kPartChannels + lane * kChannelsPerLane;
  const bool valid = c0 < l.hidden;
  const char* row = l.staging_x(ws, parity, s, t);
  int4 data[2] = {make_int4(0, 0, 0, 0), make_int4(0, 0, 0, 0)};
  if (valid) {
    const auto* src = reinterpret_cast<const int4*>(row + (a.use_fp8 ? c0 : c0 * 2));
    data[0] = ptx::ld_v4(src);
    if (!a.use_fp8) data[1] = ptx::ld_v4(src + 1);
  }
  // The part's scale words: UE8M0 one word (lane 0), else one per 128 channels (lanes 0-3).
  const int words = a.use_ue8m0 ? l.num_scale_words : l.num_scales;
  const int part_words = !a.use_fp8 ? 0 : a.use_ue8m0 ? 1 : kPartChannels / kLlScaleBlock;
  const int word = (a.use_ue8m0 ? part : part * (kPartChannels / kLlScaleBlock)) + lane;
  const bool has_word = lane < part_words && word < words;
  const std::uint32_t scale = has_word ? l.staging_scales(ws, parity, s, t)[word] : 0u;
  unsigned slots = ll_part_slots(mask, seq);
  if (lane < a.num_topk && (slots >> lane & 1u) != 0 && !ll_word_is_of(place_word, seq)) {
    std::uint64_t polled_ns = 0;
    if (!wait_op_word(place_at, seq, a.view, OpId::kLlDispatch, CounterId::kRowsArrived,
                      a.view.domain_base_rank + s, place_word, polled_ns))
      slots &= ~(1u << lane);  // reported: the host raises; this slot gets no row
  }
  const auto place = static_cast<std::int32_t>(ll_word_bits(place_word));
  // This lane's slot's row here: expert e_lane, row i_lane within it (-1: none, or dropped: its
  // expert's list was full, as the sender reported; or out of range).
  int e_lane = -1;
  std::int32_t i_lane = -1;
  if (lane < a.num_topk && (slots >> lane & 1u) != 0 && place >= 0 &&
      ll_place_expert(place) < l.num_local_experts) {
    const int e = ll_place_expert(place);
    const std::int32_t i = r.begin[e * R + s] + ll_place_row(place);
    const std::int32_t end = s + 1 < R ? r.begin[e * R + s + 1] : r.total[e];
    if (i < end) {
      e_lane = e;
      i_lane = i;
    }
  }
  const std::int64_t out_lane = e_lane < 0 ? -1 : static_cast<std::int64_t>(e_lane) * l.capacity + i_lane;
  if (part == 0) {
    if (lane < l.max_topk)
      l.token_rows(ws, a.half, s)[static_cast<std::int64_t>(t) * l.max_topk + lane] =
          static_cast<std::int32_t>(out_lane);
    if (out_lane >= 0) l.src_info(ws, a.half)[out_lane] = t;
  }
  const std::int64_t row_bytes = a.use_fp8 ? l.hidden : l.hidden * 2;
  const unsigned rows = __ballot_sync(kLlFullMask, e_lane >= 0);
  if (first) tracer.mark(kLlTraceItemReady);
  for (unsigned left = rows; left != 0; left &= left - 1) {
    const int k = __ffs(left) - 1;
    const int e = __shfl_sync(kLlFullMask, e_lane, k);
    const std::int32_t i = __shfl_sync(kLlFullMask, i_lane, k);
    const std::int64_t out_row = static_cast<std::int64_t>(e) * l.capacity + i;
    if (valid) {
      auto* dst =
          reinterpret_cast<int4*>(l.recv_x(ws, a.half) + out_row * row_bytes + (a.use_fp8 ? c0 : c0 * 2));
      ptx::st_na_v4(dst, data[0]);
      if (!a.use_fp8) ptx::st_na_v4(dst + 1, data[1]);
    }
    if (has_word)  // scales transposed: [nle][words][capacity]
      l.recv_scales(ws, a.half)[(static_cast<std::int64_t>(e) * words + word) * l.capacity + i] = scale;
  }
}

// Row block b, every warp: the items block b of each source sent (warp w: what its warp w sent),
// after that block's rows are in. Items of tokens past a source's count only clear token_rows.
// `masked`: the block's copy of the mask (store_mask_copy).
__device__ void receive_rows(const LlDispatchArgs& a, int parity, std::uint64_t seq, const SourceRows& r,
                             const DirectRoles& roles, const std::uint8_t* masked, const std::int64_t* tokens,
                             const LlTracer& tracer) {
  bool first = true;
  const LlLayout& l = a.layout;
  const int parts = l.num_parts;
  const std::int64_t items = l.max_tokens * parts;
  const std::int64_t num_warps = static_cast<std::int64_t>(roles.row_blocks) * kLlWarps;
  for (int s = 0; s < a.view.num_domain_ranks; ++s) {
    if (masked[s] != 0) continue;  // nothing was sent; combine skips its token_rows
    for (std::int64_t item = first_row_item_index(roles.row_blocks); item < items; item += num_warps) {
      const LlSplit tp = ll_split(item, l.by_parts);
      if (tp.quot < tokens[s]) {
        receive_item(a, parity, seq, r, s, tp.quot, tp.rem, tracer, first);
        first = false;
      } else if (tp.rem == 0 && threadIdx.x % 32 < l.max_topk) {
        l.token_rows(a.workspace, a.half,
                     s)[static_cast<std::int64_t>(tp.quot) * l.max_topk + threadIdx.x % 32] = -1;
      }
    }
  }
}

// The kernel body (every thread of every block): ll_run_phases' steps in this form's order.
template <typename Peers>
__device__ void ll_dispatch_direct(const LlDispatchArgs& a, std::int32_t* smem) {
  static_assert(!Peers::kStagesLocally, "the direct form stores into every peer");
  __shared__ std::int64_t tokens[kLlMaxRanks];
  const std::uint64_t entered = a.trace != nullptr ? ptx::globaltimer() : 0;
  const DomainView& v = a.view;
  const LlLayout& l = a.layout;
  LlControl* mine = l.control_of(a.workspace, kLlKindDispatch);
  const LlLaunchSeq launch = ll_launch_seq(mine, a.phases, a.half);
  const LlCreditLook look = (a.phases & kLlSend) ? ll_look_credits(mine, v.num_domain_ranks) : LlCreditLook{};
  const DirectRoles roles(l.num_experts);
  const MaskCopy mask_copy = load_mask_copy(v);
  // The send's first loads before anything reads the seq: their round trip and the seq's overlap.
  const bool sends = (a.phases & kLlSend) != 0;
  WarpMask row_mask;
  const RowItem first = sends && roles.rows ? first_row_item(a, roles.row_blocks, row_mask) : RowItem{};
  const PlaceIds ids = sends && roles.lists ? load_place_ids(a, 0) : PlaceIds{};
  const std::uint64_t seq = launch.value();
  const int parity = static_cast<int>(seq & 1u);
  const LlTracer tracer(a.trace, seq);
  // Stored after the first item's or ids' loads are issued; read after the credit wait's barrier
  // (or the one below).
  const std::uint8_t* masked = store_mask_copy(v, mask_copy);
  if (sends) {
    tracer.clear();
    tracer.mark(kLlTraceEntry, entered);
    if (!ll_wait_credits(mine, parity, seq, v, OpId::kLlDispatch, look)) return;
    tracer.mark(kLlTraceCredits);
    // A row block's `sent` is stamped past the block barrier that ends its stores and before its
    // flags (as in ll_run_phases), so `sent` -> `send-arrived` is the flags' system-scope fence; a
    // list block's when thread 0's stores are issued. A block of both roles (a grid of one) stamps
    // it after its rows.
    if (roles.lists) {
      send_places<Peers>(a, parity, seq, roles, ids, masked, tracer);
      if (!roles.rows) tracer.mark(kLlTraceSent);
    }
    if (roles.rows) {
      // Row block 0's flag publishes the call (its release covers these stores).
      if (blockIdx.x == 0) publish_call<Peers>(a, parity, masked);
      send_rows<Peers>(a, parity, seq, first, roles.row_blocks, row_mask);
      __syncthreads();
      tracer.mark(kLlTraceSent);
      ll_flag_block<Peers>(
          v, a.workspace, [&](char* peer) { return l.rows_done(peer, parity, v.domain_rank, blockIdx.x); },
          seq, masked);
    }
    ll_arrive_after_send<Peers>(mine, seq, a.half, tracer);
  } else {
    tracer.mark(kLlTraceRecvEntry, entered);
    __syncthreads();  // the mask's copy is in
  }
  if (a.phases & kLlRecv) {
    // NOTE: as in ll_run_phases, the credits are given even when a wait failed or a signature
    // differed (nothing is read from the staging then).
    const SourceRows r{smem, smem + l.num_local_experts * v.num_domain_ranks};
    if (wait_and_scan(a, parity, seq, roles, masked, tokens, r)) {
      tracer.mark(kLlTraceDoneSeen);
      if (roles.rows) receive_rows(a, parity, seq, r, roles, masked, tokens, tracer);
    }
    tracer.mark(kLlTraceReceived);
    ll_give_credits<Peers>(v, l, a.workspace, kLlKindDispatch, parity, masked);
    tracer.mark(kLlTraceExit);
  }
}

}  // namespace

}  // namespace epcomm
