// Multi-domain dispatch (docs/multi_domain.md, "Dispatch" steps 3-5). Built into epcomm_nvshmem.
//
// Grid: 2C blocks. Block c < C: warp 0 is channel c's sender (its tokens in order: for every other
// domain a token reaches, a slot packed into symmetric staging and put into the forwarder's ring
// with a signal; for its own domain it is the forwarder and writes the rows itself), the other
// warps receive. Block C + c: every warp forwards the streams (p, c) it owns, p = warp, warp + 16,
// ..., polling them in turn, then receives. Every row lands at its final single-domain place
// (source rank, then token: md_route.hpp), so outputs equal one domain's.
//
// NOTE (progress): a forwarder never blocks on one stream while another of its streams has a slot
// ready, and waits on nothing but slot flags; senders wait only for credits, which forwarders
// return at least every N/2 slots and at each stream's end; receivers wait only for rows. So every
// wait ends while the peers run, whatever the order of the streams' slots. The grid (2C <= SMs,
// one block per SM) is resident at once.
#include <cstdint>

#include "core/copy.cuh"
#include "core/cuda_check.hpp"
#include "internode/md_streams.cuh"
#include "internode/md_tables.hpp"
#include "intranode/dispatch_rows.cuh"

namespace epcomm {

namespace {

constexpr int kWarps = kMdWarpsPerBlock;
constexpr int kThreads = kWarps * 32;
constexpr int kMaskWords = (kMaxDomainRanks + 31) / 32;

// The rank's place, and whether this call writes no row (MdDispatchArgs::drain, or rows that do
// not fit found here in worst-case mode).
struct Place : md::Geom {
  bool drain;
};

// Where a row comes from: this rank's inputs (its own domain) or a ring slot (another domain's).
struct RowSource {
  const std::uint8_t* payload;
  const float* scales;
  std::int64_t scale_stride;  // elements between consecutive scales
  const void* topk;           // global expert ids
  int topk_bytes;             // 8 or 4
  const float* weights;
  std::int32_t src_token;
};

__device__ std::int64_t load_index(const void* p, int bytes, std::int64_t i) {
  return bytes == 8 ? static_cast<const std::int64_t*>(p)[i] : static_cast<const std::int32_t*>(p)[i];
}
__device__ void store_index(char* p, int bytes, std::int64_t i, std::int64_t v) {
  if (bytes == 8)
    reinterpret_cast<std::int64_t*>(p)[i] = v;
  else
    reinterpret_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v);
}

// The whole warp: writes one row into rank (me_domain, j)'s region, top-k ids made local to j.
__device__ void write_row(const MdDispatchArgs& a, const Place& p, const RowSource& src, int j,
                          std::int64_t row) {
  const HtDispatchLayout& l = a.region;
  const int lane = threadIdx.x % 32;
  const DispatchRowDst dst = region_row(l, a.view.peer_base[j], row);
  warp_copy_v4<CopySource::kAcquired>(dst.x, src.payload, static_cast<std::size_t>(l.row_bytes));
  for (int q = lane; q < l.num_scales; q += 32) dst.scales[q] = src.scales[q * src.scale_stride];
  if (lane < l.num_topk) {
    const std::int64_t expert = load_index(src.topk, src.topk_bytes, lane);
    const std::int64_t first = static_cast<std::int64_t>(p.me_domain * p.G + j) * a.num_local_experts;
    const bool local = expert >= first && expert < first + a.num_local_experts;
    store_index(dst.topk, l.idx_bytes, lane, local ? expert - first : -1);
    dst.weights[lane] = local ? src.weights[lane] : 0.0f;
  }
  if (lane == 0) *dst.src_idx = src.src_token;
}

// The whole warp: releases `pending[j]` more rows written into each rank j's region (lane-strided).
__device__ void publish_rows(const MdDispatchArgs& a, const Place& p, std::int32_t* pending) {
  __syncwarp();
  for (int j = threadIdx.x % 32; j < p.G; j += 32) {
    if (pending[j] == 0) continue;
    // NOTE: a release after the warp barrier: every lane's rows precede the count.
    ptx::red_add_release_sys(RegionLayout::progress(a.view.peer_base[j], p.me_local, 0),
                             static_cast<std::uint64_t>(pending[j]));
    pending[j] = 0;
  }
  __syncwarp();
}

// Bit j of the token's ranks in domain d (is_token_in_rank), one word per 32 ranks, in every lane.
__device__ void token_mask(const MdDispatchArgs& a, const Place& p, std::int64_t t, int d,
                           std::uint32_t (&mask)[kMaskWords]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int u = 0; u < kMaskWords; ++u) {
    const int j = u * 32 + lane;
    const bool in = j < p.G && a.is_token_in_rank[t * p.R + d * p.G + j];
    mask[u] = __ballot_sync(0xffffffffu, in);
  }
}

// ---- sender ----------------------------------------------------------------------------------

struct SenderState {
  std::uint64_t next_k[kMdMaxDomains];    // per destination domain: the stream's next slot (cumulative)
  std::int64_t own_row[kMaxDomainRanks];  // next row of this rank's own-domain rows on each rank j
  std::int32_t pending[kMaxDomainRanks];  // own-domain rows written but not yet released
};

// Packs token t into staging slot q of channel c and puts it into slot k of its stream at domain
// d's forwarder. False when the credits never came (recorded).
__device__ bool put_token(const MdDispatchArgs& a, const Place& p, int c, std::int64_t t, int d,
                          const std::uint32_t (&mask)[kMaskWords], std::uint64_t q, std::uint64_t k) {
  const MdSlot& f = a.sym.slot;
  const MdRings& rings = a.sym.rings;
  const int lane = threadIdx.x % 32;
  // NOTE: staging slot q % S is rewritten: the puts that read it S slots ago have completed.
  if (q > 0 && q % static_cast<std::uint64_t>(rings.staging_slots) == 0) {
    md::quiet();
    __syncwarp();
  }
  char* stage = md::at<char>(a.place, rings.staging_slot(c, q));
  warp_copy_v4<CopySource::kReadOnly>(stage + f.payload_offset, a.x + t * f.row_bytes,
                                      static_cast<std::size_t>(f.row_bytes));
  auto* scales = reinterpret_cast<float*>(stage + f.scales_offset);
  for (int s = lane; s < f.num_scales; s += 32)
    scales[s] = a.x_scales[t * a.scale_stride_token + s * a.scale_stride_block];
  if (lane < f.num_topk) {
    reinterpret_cast<std::int32_t*>(stage + f.topk_offset)[lane] =
        static_cast<std::int32_t>(load_index(a.topk_idx, a.region.idx_bytes, t * f.num_topk + lane));
    reinterpret_cast<float*>(stage + f.weights_offset)[lane] = a.topk_weights[t * f.num_topk + lane];
  }
  if (lane == 0) *reinterpret_cast<std::int32_t*>(stage + f.src_token_offset) = static_cast<std::int32_t>(t);
  if (lane < f.mask_words) reinterpret_cast<std::uint32_t*>(stage + f.mask_offset)[lane] = mask[lane];
  __syncwarp();
  const int p_send = md_peer_index(p.me_domain, d), p_recv = md_peer_index(d, p.me_domain);
  const int pe = d * p.G + p.me_local;
  const auto N = static_cast<std::uint64_t>(rings.ring_slots);
  bool ok = true;
  if (lane == 0 && k >= N)
    ok = md::wait_geq(
        md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpDispatch, kMdCredits, p_send, c)), k + 1 - N,
        a.view, OpId::kDispatch, CounterId::kMdCredits, pe, d);
  if (!__shfl_sync(0xffffffffu, ok, 0)) return false;
  md::put_signal_set_warp(md::at<char>(a.place, rings.slot(p_recv, c, k)), stage, f.put_bytes_full,
                          md::at<std::uint64_t>(a.place, rings.flag(p_recv, c, k)),
                          md_slot_flag(kMdOpDispatch, p_recv, c, k), pe);
  return true;
}

// Channel c's tokens, in order, to every domain they reach.
__device__ void run_sender(const MdDispatchArgs& a, const Place& p, int c) {
  __shared__ SenderState st;
  const int lane = threadIdx.x % 32;
  const MdHeader& h = a.sym.header;
  for (int d = lane; d < p.D; d += 32)
    st.next_k[d] = d == p.me_domain
                       ? 0
                       : *md::at<std::uint64_t>(
                             a.place, h.counter(kMdOpDispatch, kMdSent, md_peer_index(p.me_domain, d), c));
  for (int j = lane; j < p.G; j += 32) {
    st.own_row[j] = md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, p.my_rank, c, j);
    st.pending[j] = 0;
  }
  __syncwarp();
  const std::int64_t t0 = md_channel_begin(a.num_tokens, c, p.C),
                     t1 = md_channel_begin(a.num_tokens, c + 1, p.C);
  const bool by_index = a.region.num_topk > 0;
  std::uint64_t q = 0;  // staging slots used
  for (std::int64_t t = t0; t < t1; ++t) {
    const RowSource src{
        a.x + t * a.region.row_bytes,
        a.x_scales + t * a.scale_stride_token,
        a.scale_stride_block,
        by_index ? static_cast<const char*>(a.topk_idx) + t * a.region.num_topk * a.region.idx_bytes
                 : nullptr,
        a.region.idx_bytes,
        by_index ? a.topk_weights + t * a.region.num_topk : nullptr,
        static_cast<std::int32_t>(t)};
    for (int d = 0; d < p.D; ++d) {
      std::uint32_t mask[kMaskWords];
      token_mask(a, p, t, d, mask);
      std::uint32_t any = 0;
#pragma unroll
      for (int u = 0; u < kMaskWords; ++u) any |= mask[u];
      if (any == 0) continue;
      if (d != p.me_domain) {
        if (!put_token(a, p, c, t, d, mask, q++, st.next_k[d])) return;
        if (lane == 0) ++st.next_k[d];
        __syncwarp();
        continue;
      }
      if (p.drain) continue;
      for (int j = 0; j < p.G; ++j) {
        if (!md_mask_has(mask, j)) continue;
        write_row(a, p, src, j, st.own_row[j]);
        __syncwarp();
        if (lane == 0) {
          ++st.own_row[j];
          ++st.pending[j];
        }
        __syncwarp();
      }
    }
    if ((t - t0) % kMdPublishTokens == kMdPublishTokens - 1 || t + 1 == t1) publish_rows(a, p, st.pending);
  }
  for (int d = lane; d < p.D; d += 32)
    if (d != p.me_domain)
      *md::at<std::uint64_t>(a.place, h.counter(kMdOpDispatch, kMdSent, md_peer_index(p.me_domain, d), c)) =
          st.next_k[d];
  md::quiet();  // the next operation rewrites the staging from slot 0
}

// ---- forwarder -------------------------------------------------------------------------------

// Reads slot k of stream (peer, c) from domain s and writes its row to every rank of its mask.
__device__ void forward_slot(const MdDispatchArgs& a, const Place& p, int peer, int c, std::uint64_t k,
                             MdStreamState* st, std::int32_t* pending) {
  const MdSlot& f = a.sym.slot;
  const char* slot = md::at<char>(a.place, a.sym.rings.slot(peer, c, k));
  if (p.drain) return;
  const auto* mask = reinterpret_cast<const std::uint32_t*>(slot + f.mask_offset);
  const RowSource src{reinterpret_cast<const std::uint8_t*>(slot + f.payload_offset),
                      reinterpret_cast<const float*>(slot + f.scales_offset),
                      1,
                      slot + f.topk_offset,
                      4,
                      reinterpret_cast<const float*>(slot + f.weights_offset),
                      *reinterpret_cast<const std::int32_t*>(slot + f.src_token_offset)};
  const int lane = threadIdx.x % 32;
  for (int j = 0; j < p.G; ++j) {
    if (!md_mask_has(mask, j)) continue;
    write_row(a, p, src, j, st->rows_to[j]);
    __syncwarp();
    if (lane == 0) {
      ++st->rows_to[j];
      ++pending[j];
    }
    __syncwarp();
  }
}

// The first rows of every owned stream on every rank j (rows_to starts there).
__device__ void init_streams(const MdDispatchArgs& a, const Place& p, int c, int first_peer) {
  for (int peer = first_peer; peer < p.D - 1; peer += kWarps) {
    const int s = md_peer_domain(p.me_domain, peer);
    MdStreamState* st = a.streams + peer * p.C + c;
    for (int j = threadIdx.x % 32; j < p.G; j += 32)
      st->rows_to[j] = static_cast<std::int32_t>(
          md_stream_first_row(a.count_matrix, a.fwd_prefix, p.G, p.C, s * p.G + p.me_local, c, j));
  }
  __syncwarp();
}

// Consumes the ready slots of one stream; returns whether any was.
__device__ bool drain_stream(const MdDispatchArgs& a, const Place& p, int peer, int c,
                             std::int32_t* pending) {
  const int s = md_peer_domain(p.me_domain, peer);
  const std::int32_t len = a.fwd_len[s * p.C + c];
  MdStreamState* st = a.streams + peer * p.C + c;
  const int lane = threadIdx.x % 32;
  const std::uint64_t base =
      *md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpDispatch, kMdConsumed, peer, c));
  const int batch = md_credit_batch(a.sym.rings.ring_slots);
  bool moved = false;
  while (st->consumed < len) {
    const std::uint64_t k = base + static_cast<std::uint64_t>(st->consumed);
    bool ready = false;
    if (lane == 0)
      ready = md::flag_is(md::at<std::uint64_t>(a.place, a.sym.rings.flag(peer, c, k)),
                          md_slot_flag(kMdOpDispatch, peer, c, k));
    if (!__shfl_sync(0xffffffffu, ready, 0)) break;
    __syncwarp();  // lane 0's acquire orders the slot's reads of every lane
    forward_slot(a, p, peer, c, k, st, pending);
    moved = true;
    __syncwarp();
    if (lane == 0) {
      const std::int32_t consumed = ++st->consumed;
      // NOTE: credits at least every N/2 slots (a sender waits for k - N + 1) and at the end.
      if (consumed - st->credited >= batch || consumed == len) {
        md::signal_add(md::at<std::uint64_t>(a.place, a.sym.header.counter(kMdOpDispatch, kMdCredits,
                                                                           md_peer_index(s, p.me_domain), c)),
                       static_cast<std::uint64_t>(consumed - st->credited), s * p.G + p.me_local);
        st->credited = consumed;
      }
    }
    __syncwarp();
  }
  return moved;
}

// The streams (peer, c) of this warp, polled in turn until every one is consumed. False on a
// timeout (recorded).
__device__ bool run_forwarder(const MdDispatchArgs& a, const Place& p, int c, int first_peer) {
  __shared__ std::int32_t pending_of[kWarps][kMaxDomainRanks];
  std::int32_t* pending = pending_of[threadIdx.x / 32];
  for (int j = threadIdx.x % 32; j < p.G; j += 32) pending[j] = 0;
  init_streams(a, p, c, first_peer);
  // Every stream consumed: the next operation's start after these slots (kMdConsumed).
  return md::poll_streams(
      a, p, c, first_peer, kMdOpDispatch, kMdConsumed, OpId::kDispatch, CounterId::kMdSlot,
      [&](int peer) { return drain_stream(a, p, peer, c, pending); }, [&] { publish_rows(a, p, pending); });
}

// ---- receiver --------------------------------------------------------------------------------

// Rows this rank receives through forwarder i (from every (s, i)).
__device__ std::int64_t rows_through(const MdDispatchArgs& a, const Place& p, int i) {
  std::int64_t n = 0;
  for (int s = 0; s < p.D; ++s) n += a.count_matrix[(s * p.G + i) * p.G + p.me_local];
  return n;
}

__device__ void copy_out(const MdDispatchArgs& a, std::int64_t from, std::int64_t rows) {
  const HtDispatchLayout& l = a.region;
  warp_copy_rows(l, output_row(a, from), region_row(l, a.view.peer_base[a.view.domain_rank], from),
                 static_cast<std::size_t>(rows));
}

// Receiver warp `id` of `count`: pads worst-case rows, then per source rank r it owns waits for
// every row of r's forwarder and copies r's rows out (zero-copy: only waits).
__device__ void run_receiver(const MdDispatchArgs& a, const Place& p, int id, int count) {
  const int lane = threadIdx.x % 32;
  const std::int64_t num_recv = *a.num_recv;
  for (std::int64_t row = num_recv + id; row < a.num_rows; row += count) {
    const DispatchRowDst dst = output_row(a, row);
    if (lane < a.region.num_topk) {
      store_index(dst.topk, a.region.idx_bytes, lane, -1);
      dst.weights[lane] = 0.0f;
    }
    if (lane == 0) *dst.src_idx = -1;
  }
  if (p.drain) return;
  for (int r = id; r < p.R; r += count) {
    const std::int64_t n = a.count_matrix[r * p.G + p.me_local];
    if (n == 0) continue;
    const int i = r % p.G;
    bool ok = true;
    if (lane == 0)
      ok = wait_at_least(RegionLayout::progress(a.view.peer_base[p.me_local], i, 0),
                         static_cast<std::uint64_t>(rows_through(a, p, i)), a.view, OpId::kDispatch,
                         CounterId::kRowsArrived, a.view.domain_base_rank + i);
    if (!__shfl_sync(0xffffffffu, ok, 0)) return;
    const std::int64_t first = md_first_row(a.count_matrix, p.G, r, p.me_local);
    if (!a.outputs_in_region) copy_out(a, first, n);
  }
}

// Worst-case mode: rows that would not fit some rank's region or outputs stop this domain's writes.
__device__ bool rows_fit(const MdDispatchArgs& a, const md::Geom& p) {
  const std::int64_t limit = a.num_worst && a.num_rows < a.region.cap_rows ? a.num_rows : a.region.cap_rows;
  bool fits = true;
  for (int j = threadIdx.x; j < p.G; j += blockDim.x) {
    std::int64_t n = 0;
    for (int r = 0; r < p.R; ++r) n += a.count_matrix[r * p.G + j];
    if (n <= limit) continue;
    fits = false;
    if (blockIdx.x == 0)
      report_failure(a.view.status, StatusCode::kRegionTooSmall, OpId::kDispatch, CounterId::kNone, p.my_rank,
                     a.view.domain_base_rank + j, limit, n);
  }
  return __syncthreads_and(fits);
}

__global__ void __launch_bounds__(kThreads, 1) md_dispatch_kernel(MdDispatchArgs a) {
  // NOTE: a notify that timed out or met another call left no counts: nothing here may run on them.
  if (sync_failed(a.view.status)) return;
  const md::Geom g = md::Geom::of(a);
  const bool fits = rows_fit(a, g);
  const Place p{g, a.drain || !fits};
  const int warp = threadIdx.x / 32;
  const int C = p.C;
  const int num_receivers = C * (kWarps - 1) + C * kWarps;
  if (static_cast<int>(blockIdx.x) < C) {
    const int c = static_cast<int>(blockIdx.x);
    if (warp == 0)
      run_sender(a, p, c);
    else
      run_receiver(a, p, c * (kWarps - 1) + warp - 1, num_receivers);
    return;
  }
  const int c = static_cast<int>(blockIdx.x) - C;
  run_forwarder(a, p, c, warp);
  run_receiver(a, p, C * (kWarps - 1) + c * kWarps + warp, num_receivers);
}

}  // namespace

void launch_md_dispatch(const MdDispatchArgs& args, void* stream) {
  md_dispatch_kernel<<<2 * args.num_channels, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
