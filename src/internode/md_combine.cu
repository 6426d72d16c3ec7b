// Multi-domain combine (docs/multi_domain.md, "Combine"): the reverse of md_dispatch.cu. Built
// into epcomm_nvshmem. Every rank has staged the rows it received (MdCombineNvl) and set its
// "staged" word (progress(j, j, 1)) before this kernel.
//
// Grid: 2C blocks. Block c < C: warp 0 is the owner of channel c: for each of its tokens, in order,
// bias0 + bias1, then the partial of every domain the token reached, in domain order (its own
// domain's summed here from the staged rows; another domain's from slot k of stream (d, c) of its
// ring), one rounding to BF16. Block C + c: every warp forwards the streams (p, c) it owns back to
// their owners: it retraces the dispatch's stream by merging, over the ranks j of its domain, the
// staged rows of that source and channel (each in token order), sums the rows of each token in
// float32 in ascending j, and puts the partial into the owner's ring (BF16 as it was when one rank
// contributed: exact, and the owner knows it from its routing).
//
// NOTE (progress): an owner consumes its streams in token order across domains, so a forwarder
// never blocks on one stream's credits: a stream whose ring is full is left for the next sweep.
// Owners wait only for slot flags, forwarders only for staged rows (set before the kernel) and
// credits (non-blocking), so every wait ends while the peers run.
#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "core/bf16_sum.cuh"
#include "core/cuda_check.hpp"
#include "internode/md_streams.cuh"
#include "internode/md_tables.hpp"

namespace epcomm {

namespace {

constexpr int kWarps = kMdWarpsPerBlock;
constexpr int kThreads = kWarps * 32;
constexpr int kMaskWords = (kMaxDomainRanks + 31) / 32;
constexpr int kBf16PerPiece = 8;  // one 16-byte load

using Place = md::Geom;

__device__ const char* staged(const MdCombineArgs& a, int j) {
  return RegionLayout::data(a.view.peer_base[j]);
}
__device__ const int4* staged_row(const MdCombineArgs& a, int j, std::int64_t row) {
  return reinterpret_cast<const int4*>(staged(a, j) + a.nvl.x) + row * (a.nvl.hidden / kBf16PerPiece);
}
__device__ const float* staged_weights(const MdCombineArgs& a, int j, std::int64_t row) {
  return reinterpret_cast<const float*>(staged(a, j) + a.nvl.weights) + row * a.nvl.num_topk;
}
__device__ std::int32_t staged_token(const MdCombineArgs& a, int j, std::int64_t row) {
  return reinterpret_cast<const std::int32_t*>(staged(a, j) + a.nvl.src_idx)[row];
}

__device__ __forceinline__ void add_f32x8(float (&acc)[kBf16PerPiece], const float* p) {
  const float4 lo = reinterpret_cast<const float4*>(p)[0], hi = reinterpret_cast<const float4*>(p)[1];
  acc[0] += lo.x, acc[1] += lo.y, acc[2] += lo.z, acc[3] += lo.w;
  acc[4] += hi.x, acc[5] += hi.y, acc[6] += hi.z, acc[7] += hi.w;
}
__device__ __forceinline__ int4 to_bf16x8(const float (&acc)[kBf16PerPiece]) {
  int4 out;
  auto* h = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(acc[2 * i], acc[2 * i + 1]);
  return out;
}

// Every rank of the domain has staged its rows (bounded).
__device__ bool wait_staged(const MdCombineArgs& a, const Place& p) {
  bool ok = true;
  for (int j = threadIdx.x % 32; j < p.G; j += 32)
    ok = ok && wait_at_least(RegionLayout::progress(a.view.peer_base[j], j, 1), std::uint64_t{1}, a.view,
                             OpId::kCombine, CounterId::kRowsStaged, a.view.domain_base_rank + j);
  return __all_sync(0xffffffffu, ok);
}

// ---- the merge: a stream's tokens from the staged rows of one source and channel ----------------

// One warp's merge over the ranks j of the domain: cursor and end of the source's rows on each j.
struct Merge {
  std::int64_t cur[kMaxDomainRanks];
  std::int64_t end[kMaxDomainRanks];
  std::int64_t rows[kMaxDomainRanks];  // the current token's row on each j of `mask`
  std::uint32_t mask[kMaskWords];
};

// Starts the merge of source rank src_rank's rows of channel c.
__device__ void merge_start(const MdCombineArgs& a, const Place& p, int src_rank, int c, Merge& m) {
  for (int j = threadIdx.x % 32; j < p.G; j += 32) {
    m.cur[j] = md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, src_rank, c, j);
    m.end[j] = md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, src_rank, c + 1, j);
  }
  __syncwarp();
}

// The whole warp: the next token of the merge (the smallest at any cursor), the ranks holding it
// (m.mask) and its row on each (m.rows); advances their cursors. -1 once every cursor is at its end.
__device__ std::int32_t merge_next(const MdCombineArgs& a, const Place& p, Merge& m) {
  const int lane = threadIdx.x % 32;
  std::int32_t token[kMaskWords];
  std::int32_t best = INT_MAX;
#pragma unroll
  for (int u = 0; u < kMaskWords; ++u) {
    const int j = u * 32 + lane;
    token[u] = j < p.G && m.cur[j] < m.end[j] ? staged_token(a, j, m.cur[j]) : INT_MAX;
    best = min(best, token[u]);
  }
  for (int off = 16; off > 0; off >>= 1) best = min(best, __shfl_xor_sync(0xffffffffu, best, off));
#pragma unroll
  for (int u = 0; u < kMaskWords; ++u) {
    const int j = u * 32 + lane;
    const bool hit = best != INT_MAX && token[u] == best;
    const std::uint32_t ballot = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) m.mask[u] = ballot;
    if (hit) m.rows[j] = m.cur[j]++;
  }
  __syncwarp();
  return best == INT_MAX ? -1 : best;
}

__device__ int mask_count(const std::uint32_t* mask) {
  int n = 0;
#pragma unroll
  for (int u = 0; u < kMaskWords; ++u) n += __popc(mask[u]);
  return n;
}

// The whole warp: the partial of the merge's current token: its rows summed in float32 in
// ascending j into `sum`, or (one contributor) its BF16 row copied into `copy`; weights summed
// into `weights` (k floats).
__device__ void partial(const MdCombineArgs& a, const Place& p, const Merge& m, float* sum, int4* copy,
                        float* weights) {
  const int lane = threadIdx.x % 32;
  const int pieces = static_cast<int>(a.nvl.hidden / kBf16PerPiece);
  const bool single = mask_count(m.mask) == 1;
  for (int q = lane; q < pieces; q += 32) {
    float acc[kBf16PerPiece] = {};
    for (int j = 0; j < p.G; ++j) {
      if (!md_mask_has(m.mask, j)) continue;
      const int4 piece = staged_row(a, j, m.rows[j])[q];
      if (single) copy[q] = piece;
      add_bf16x8(acc, piece);
    }
    if (!single) {
      reinterpret_cast<float4*>(sum + q * kBf16PerPiece)[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      reinterpret_cast<float4*>(sum + q * kBf16PerPiece)[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    }
  }
  if (lane < a.nvl.num_topk) {
    float w = 0.0f;
    for (int j = 0; j < p.G; ++j)
      if (md_mask_has(m.mask, j)) w += staged_weights(a, j, m.rows[j])[lane];
    weights[lane] = w;
  }
}

// ---- owner ------------------------------------------------------------------------------------

struct OwnerState {
  const char* slot[kMdMaxDomains];  // domain d's partial of the current token (null: not reached)
  bool bf16[kMdMaxDomains];         // ... sent as the one contributor's BF16 row
  std::uint64_t next_k[kMdMaxDomains];
  std::int32_t taken[kMdMaxDomains], credited[kMdMaxDomains];
  bool own;  // the token reached this rank's own domain (m holds its rows)
  Merge m;
};

// Returns `count` credits of stream (d, c) to its forwarder (d, me_local).
__device__ void give_credits(const MdCombineArgs& a, const Place& p, int d, int c, std::int32_t count) {
  md::signal_add(md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpCombine, kMdCredits,
                                                                     md_peer_index(d, p.me_domain), c)),
                 static_cast<std::uint64_t>(count), d * p.G + p.me_local);
}

// The sources of token t's sum: false on a timeout (recorded).
__device__ bool gather_token(const MdCombineArgs& a, const Place& p, int c, std::int64_t t, OwnerState& st) {
  const int lane = threadIdx.x % 32;
  for (int d = 0; d < p.D; ++d) {
    int reached = 0;
#pragma unroll
    for (int u = 0; u < kMaskWords; ++u) {
      const int j = u * 32 + lane;
      reached += __popc(__ballot_sync(0xffffffffu, j < p.G && a.is_token_in_rank[t * p.R + d * p.G + j]));
    }
    if (lane == 0) st.slot[d] = nullptr;
    if (reached == 0) continue;
    if (d == p.me_domain) {
      merge_next(a, p, st.m);  // the token itself: the merge walks this rank's own rows in order
      if (lane == 0) st.own = true;
      continue;
    }
    const int peer = md_peer_index(p.me_domain, d);
    const std::uint64_t k = st.next_k[d];
    bool ok = true;
    if (lane == 0) {
      ok = md::wait_flag(md::at<std::uint64_t>(a.place, a.sym.rings.flag(peer, c, k)),
                         md_slot_flag(kMdOpCombine, peer, c, k), a.view, OpId::kCombine, CounterId::kMdSlot,
                         d * p.G + p.me_local, d);
      st.slot[d] = md::at<char>(a.place, a.sym.rings.slot(peer, c, k));
      st.bf16[d] = reached == 1;
      st.next_k[d] = k + 1;
    }
    if (!__shfl_sync(0xffffffffu, ok, 0)) return false;
  }
  __syncwarp();
  return true;
}

// The whole warp: out[t] = bias0 + bias1 + the gathered partials in domain order, rounded once.
__device__ void reduce_token(const MdCombineArgs& a, const Place& p, std::int64_t t, const OwnerState& st) {
  const int lane = threadIdx.x % 32;
  const MdSlot& f = a.sym.slot;
  const int pieces = static_cast<int>(a.nvl.hidden / kBf16PerPiece);
  for (int q = lane; q < pieces; q += 32) {
    float acc[kBf16PerPiece] = {};
    if (a.bias0 != nullptr) add_bf16x8(acc, reinterpret_cast<const int4*>(a.bias0 + t * a.nvl.hidden)[q]);
    if (a.bias1 != nullptr) add_bf16x8(acc, reinterpret_cast<const int4*>(a.bias1 + t * a.nvl.hidden)[q]);
    for (int d = 0; d < p.D; ++d) {
      if (d == p.me_domain && st.own) {
        for (int j = 0; j < p.G; ++j)
          if (md_mask_has(st.m.mask, j)) add_bf16x8(acc, staged_row(a, j, st.m.rows[j])[q]);
        continue;
      }
      if (st.slot[d] == nullptr) continue;
      const char* payload = st.slot[d] + f.payload_offset;
      if (st.bf16[d])
        add_bf16x8(acc, reinterpret_cast<const int4*>(payload)[q]);
      else
        add_f32x8(acc, reinterpret_cast<const float*>(payload) + q * kBf16PerPiece);
    }
    reinterpret_cast<int4*>(a.out + t * a.nvl.hidden)[q] = to_bf16x8(acc);
  }
  if (a.out_weights == nullptr || lane >= a.nvl.num_topk) return;
  float w = 0.0f;
  for (int d = 0; d < p.D; ++d) {
    if (d == p.me_domain && st.own) {
      for (int j = 0; j < p.G; ++j)
        if (md_mask_has(st.m.mask, j)) w += staged_weights(a, j, st.m.rows[j])[lane];
      continue;
    }
    if (st.slot[d] != nullptr) w += reinterpret_cast<const float*>(st.slot[d] + f.weights_offset)[lane];
  }
  a.out_weights[t * a.nvl.num_topk + lane] = w;
}

// Channel c's tokens, in order.
__device__ void run_owner(const MdCombineArgs& a, const Place& p, int c) {
  __shared__ OwnerState st;
  const int lane = threadIdx.x % 32;
  const MdHeader& h = a.sym.header;
  for (int d = lane; d < p.D; d += 32) {
    st.taken[d] = st.credited[d] = 0;
    st.next_k[d] = d == p.me_domain
                       ? 0
                       : *md::at<std::uint64_t>(
                             a.place, h.counter(kMdOpCombine, kMdConsumed, md_peer_index(p.me_domain, d), c));
  }
  merge_start(a, p, p.my_rank, c, st.m);
  if (!wait_staged(a, p)) return;
  const int batch = md_credit_batch(a.sym.rings.ring_slots);
  const std::int64_t t0 = md_channel_begin(a.num_tokens, c, p.C),
                     t1 = md_channel_begin(a.num_tokens, c + 1, p.C);
  for (std::int64_t t = t0; t < t1; ++t) {
    if (lane == 0) st.own = false;
    __syncwarp();
    if (!gather_token(a, p, c, t, st)) return;
    reduce_token(a, p, t, st);
    __syncwarp();
    // NOTE: credits after the reads of the slots (the warp barrier above), at least every N/2.
    for (int d = lane; d < p.D; d += 32) {
      if (st.slot[d] == nullptr) continue;
      const std::int32_t taken = ++st.taken[d];
      if (taken - st.credited[d] < batch) continue;
      give_credits(a, p, d, c, taken - st.credited[d]);
      st.credited[d] = taken;
    }
    __syncwarp();
  }
  for (int d = lane; d < p.D; d += 32) {
    if (d == p.me_domain) continue;
    if (st.taken[d] > st.credited[d]) give_credits(a, p, d, c, st.taken[d] - st.credited[d]);
    *md::at<std::uint64_t>(a.place, h.counter(kMdOpCombine, kMdConsumed, md_peer_index(p.me_domain, d), c)) +=
        static_cast<std::uint64_t>(st.taken[d]);
  }
}

// ---- forwarder --------------------------------------------------------------------------------

struct ForwarderState {
  Merge m;
  std::uint64_t puts;  // staging slots used by this warp
};

// Puts what fits of stream (peer, c) back to its owner; returns whether any slot went.
__device__ bool forward_stream(const MdCombineArgs& a, const Place& p, int peer, int c, ForwarderState& fs) {
  const int lane = threadIdx.x % 32;
  const int s = md_peer_domain(p.me_domain, peer);
  const std::int32_t len = a.fwd_len[s * p.C + c];
  MdStreamState* st = a.streams + peer * p.C + c;
  const MdSlot& f = a.sym.slot;
  const MdRings& rings = a.sym.rings;
  const std::uint64_t base =
      *md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpCombine, kMdSent, peer, c));
  const std::uint64_t* credits =
      md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpCombine, kMdCredits, peer, c));
  const int per_warp = rings.staging_slots / kWarps;
  const int warp = threadIdx.x / 32;
  const int p_recv = md_peer_index(s, p.me_domain), pe = s * p.G + p.me_local;
  for (int j = lane; j < p.G; j += 32) {
    fs.m.cur[j] = st->rows_to[j];
    fs.m.end[j] = st->row_end[j];
  }
  __syncwarp();
  bool moved = false;
  while (st->consumed < len) {
    const std::uint64_t k = base + static_cast<std::uint64_t>(st->consumed);
    bool room = false;
    if (lane == 0) room = md_may_write(k, ptx::ld_acquire_sys(credits), rings.ring_slots);
    if (!__shfl_sync(0xffffffffu, room, 0)) break;  // the owner has not freed a slot yet: next stream
    merge_next(a, p, fs.m);
    // NOTE: this warp's staging slot is rewritten: the puts that read it have completed.
    if (fs.puts > 0 && fs.puts % static_cast<std::uint64_t>(per_warp) == 0) {
      md::quiet();
      __syncwarp();
    }
    char* stage = md::at<char>(a.place, rings.staging_slot(c, warp * per_warp + fs.puts % per_warp));
    partial(a, p, fs.m, reinterpret_cast<float*>(stage + f.payload_offset),
            reinterpret_cast<int4*>(stage + f.payload_offset),
            reinterpret_cast<float*>(stage + f.weights_offset));
    __syncwarp();
    md::put_signal_set_warp(md::at<char>(a.place, rings.slot(p_recv, c, k)), stage,
                            f.put_bytes(mask_count(fs.m.mask) == 1),
                            md::at<std::uint64_t>(a.place, rings.flag(p_recv, c, k)),
                            md_slot_flag(kMdOpCombine, p_recv, c, k), pe);
    if (lane == 0) {
      ++st->consumed;
      ++fs.puts;
    }
    __syncwarp();
    moved = true;
  }
  for (int j = lane; j < p.G; j += 32) st->rows_to[j] = static_cast<std::int32_t>(fs.m.cur[j]);
  __syncwarp();
  return moved;
}

__device__ void init_streams(const MdCombineArgs& a, const Place& p, int c, int first_peer) {
  for (int peer = first_peer; peer < p.D - 1; peer += kWarps) {
    const int src_rank = md_peer_domain(p.me_domain, peer) * p.G + p.me_local;
    MdStreamState* st = a.streams + peer * p.C + c;
    for (int j = threadIdx.x % 32; j < p.G; j += 32) {
      st->rows_to[j] = static_cast<std::int32_t>(
          md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, src_rank, c, j));
      st->row_end[j] = static_cast<std::int32_t>(
          md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, src_rank, c + 1, j));
    }
  }
  __syncwarp();
}

// The streams (peer, c) of this warp back to their owners, polled in turn until every one is sent.
__device__ void run_forwarder(const MdCombineArgs& a, const Place& p, int c, int first_peer) {
  __shared__ ForwarderState states[kWarps];
  ForwarderState& fs = states[threadIdx.x / 32];
  if (threadIdx.x % 32 == 0) fs.puts = 0;
  init_streams(a, p, c, first_peer);
  if (!wait_staged(a, p)) return;
  // Every stream sent: the next operation's start after these slots (kMdSent).
  const bool done = md::poll_streams(
      a, p, c, first_peer, kMdOpCombine, kMdSent, OpId::kCombine, CounterId::kMdCredits,
      [&](int peer) { return forward_stream(a, p, peer, c, fs); }, [] {});
  if (done) md::quiet();  // the next operation rewrites the staging from its first slot
}

__global__ void __launch_bounds__(kThreads, 1) md_combine_kernel(MdCombineArgs a) {
  if (sync_failed(a.view.status)) return;  // the synchronisation before did not complete
  const Place p = Place::of(a);
  const int warp = threadIdx.x / 32;
  if (static_cast<int>(blockIdx.x) < p.C) {
    if (warp == 0) run_owner(a, p, static_cast<int>(blockIdx.x));
    return;
  }
  run_forwarder(a, p, static_cast<int>(blockIdx.x) - p.C, warp);
}

}  // namespace

void launch_md_combine(const MdCombineArgs& args, void* stream) {
  md_combine_kernel<<<2 * args.num_channels, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
