// High-throughput dispatch within one NVLink domain (see ht_args.hpp for the protocol).
//
// Blocks [0, S) send; every warp of them owns a channel (a contiguous token range) and forwards
// each token to every rank that needs it, loading each 16-byte piece of the row once and storing
// it to every destination. Rows land at their final index (source-major, token order), so no
// per-chunk handshake is needed; every few tokens the warp releases, per destination, how many of
// its rows are complete. Nothing waits on a whole block: a warp's release stalls only that warp.
// Receivers: each warp polls the progress of the (source, channel) pairs it owns and copies
// whatever rows arrived from this rank's region into the outputs. Phased schedule (the default):
// every block is a sender, and each warp turns receiver once its own sends are done. Overlapped
// schedule: blocks [S, grid) receive from the start. Copy-engine dispatch (HtDispatchArgs::stage_x):
// a launch of senders only packs the rows, chunk by chunk, into local staging, counting each chunk
// done for the copy stream; the copy engine moves a chunk once packed and a stream write publishes
// it; then one launch writes the own rows and copies out.
#include <cstdint>

#include "core/copy.cuh"
#include "core/cuda_check.hpp"
#include "core/pdl.cuh"
#include "core/wait.cuh"
#include "intranode/dispatch_rows.cuh"
#include "intranode/ht_args.hpp"
#include "intranode/ht_guard.cuh"

namespace epcomm {

namespace {

constexpr int kWarps = kHtWarpsPerBlock;
constexpr int kThreads = kWarps * 32;
constexpr int kRowUnroll = 14;  // 16-byte pieces per lane loaded before they are stored
constexpr int kRankSlots = (kMaxDomainRanks + 31) / 32;  // destinations per lane
constexpr int kScalesPerLane = 2;  // FP8 scales a lane loads ahead (64 per row: hidden up to 8192)
// A receiver sweep that found nothing new sleeps, doubling from the minimum to the maximum.
constexpr unsigned kMinIdlePollNs = 256;
constexpr unsigned kMaxIdlePollNs = 4096;

__device__ __forceinline__ void store_index(char* row, int j, int idx_bytes, std::int64_t value) {
  if (idx_bytes == 8)
    reinterpret_cast<std::int64_t*>(row)[j] = value;
  else
    reinterpret_cast<std::int32_t*>(row)[j] = static_cast<std::int32_t>(value);
}

// The destinations of one token: domain ranks and the row each receives it at.
struct TokenRoute {
  int num_dsts;
  int dst[kMaxDomainRanks];
  std::int64_t row[kMaxDomainRanks];
};

// One warp forwards token t to every destination of `route`. stage_shift (copy-engine pack only,
// else null): per destination, its staging row minus its region row, or kNoStaging for a peer whose
// payload the copy engine copies straight from x (metadata only). own_payload false: the same for
// this rank's own row.
constexpr std::int64_t kNoStaging = INT64_MIN;
__device__ void forward_token(const HtDispatchArgs& a, std::int64_t t, const TokenRoute& route,
                              const std::int64_t* stage_shift, bool own_payload) {
  const HtDispatchLayout& l = a.region;
  const DomainView& v = a.view;
  const int lane = threadIdx.x % 32;
  auto dst_of = [&](int i) {
    const int d = route.dst[i];
    return d == v.domain_rank ? output_row(a, route.row[i]) : region_row(l, v.peer_base[d], route.row[i]);
  };
  auto payload_of = [&](int i) -> std::uint8_t* {
    const int d = route.dst[i];
    if (d == v.domain_rank) return own_payload ? dst_of(i).x : nullptr;
    if (stage_shift == nullptr) return dst_of(i).x;
    if (stage_shift[d] == kNoStaging) return nullptr;
    return a.stage_x + (route.row[i] + stage_shift[d]) * l.row_bytes;
  };
  bool any_payload = stage_shift == nullptr && own_payload;
  for (int k = 0; k < route.num_dsts && !any_payload; ++k) any_payload = payload_of(k) != nullptr;

  // Metadata loads first, so their latency hides behind the payload's.
  float scale[kScalesPerLane];
#pragma unroll
  for (int u = 0; u < kScalesPerLane; ++u) {
    const int j = lane + 32 * u;
    if (j < l.num_scales) scale[u] = a.x_scales[t * a.scale_stride_token + j * a.scale_stride_block];
  }
  std::int64_t expert = -1;
  float weight = 0.0f;
  if (lane < l.num_topk) {
    expert = l.idx_bytes == 8 ? static_cast<const std::int64_t*>(a.topk_idx)[t * l.num_topk + lane]
                              : static_cast<const std::int32_t*>(a.topk_idx)[t * l.num_topk + lane];
    weight = a.topk_weights[t * l.num_topk + lane];
  }

  // Payload: each lane loads kRowUnroll pieces, then stores them to every destination.
  // NOTE: coherent loads: the copy-engine dispatch's packs and own rows run beside the copy stream's
  // copies, which slow non-coherent loads ~3-4x on one GPU (ptx::ld_na_v4).
  const auto* src = reinterpret_cast<const int4*>(a.x + t * l.row_bytes);
  const int pieces = any_payload ? static_cast<int>(l.row_bytes / 16) : 0;
  for (int base = 0; base < pieces; base += 32 * kRowUnroll) {
    int4 v4[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      const int i = base + u * 32 + lane;
      if (i < pieces) v4[u] = ptx::ld_na_v4(src + i);
    }
    for (int k = 0; k < route.num_dsts; ++k) {
      auto* dst = reinterpret_cast<int4*>(payload_of(k));
      if (dst == nullptr) continue;
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) {
        const int i = base + u * 32 + lane;
        if (i < pieces) ptx::st_na_v4(dst + i, v4[u]);
      }
    }
  }

  // Metadata: scales gathered from their strided layout; top-k turned into local ids.
  for (int k = 0; k < route.num_dsts; ++k) {
    const int d = route.dst[k];
    const DispatchRowDst dst = dst_of(k);
#pragma unroll
    for (int u = 0; u < kScalesPerLane; ++u) {
      const int j = lane + 32 * u;
      if (j < l.num_scales) dst.scales[j] = scale[u];
    }
    for (int j = lane + 32 * kScalesPerLane; j < l.num_scales; j += 32)  // hidden > 8192 FP8
      dst.scales[j] = a.x_scales[t * a.scale_stride_token + j * a.scale_stride_block];
    if (lane < l.num_topk) {
      const std::int64_t first = static_cast<std::int64_t>(v.domain_base_rank + d) * a.num_local_experts;
      const bool local = expert >= first && expert < first + a.num_local_experts;
      store_index(dst.topk, lane, l.idx_bytes, local ? expert - first : -1);
      dst.weights[lane] = local ? weight : 0.0f;
    }
    if (lane == 0) *dst.src_idx = static_cast<std::int32_t>(t);
  }
}

// Per block: this rank's first row on each destination, (pack) staging row minus region row, and
// whether this rank writes its own rows' payload.
struct SenderBases {
  std::int64_t dst_row_base[kMaxDomainRanks];
  std::int64_t stage_shift[kMaxDomainRanks];
  bool own_payload;
};

// One warp forwards the tokens of `channel` to the destinations this launch serves: every one
// (SM stores), the peers (pack: payload to staging, no progress) or this rank (self_only).
__device__ void send_channel(const HtDispatchArgs& a, int channel, const SenderBases& bases,
                             TokenRoute& route) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank;
  const int lane = threadIdx.x % 32;
  const bool pack = a.stage_x != nullptr;
  // Lane l counts this channel's completed rows to destinations l, l + 32, l + 64.
  std::int32_t sent[kRankSlots] = {}, published[kRankSlots] = {};
  const std::int64_t t_begin = static_cast<std::int64_t>(channel) * a.tokens_per_channel;
  const std::int64_t t_end = min(a.num_tokens, t_begin + a.tokens_per_channel);
  // send_slot of the next token is loaded one token ahead.
  std::int32_t next_slot[kRankSlots];
  auto load_slots = [&](std::int64_t t) {
#pragma unroll
    for (int j = 0; j < kRankSlots; ++j) {
      const int d = j * 32 + lane;
      next_slot[j] = d < G && t < t_end ? a.send_slot[t * G + d] : -1;
    }
  };
  load_slots(t_begin);
  for (std::int64_t t = t_begin; t < t_end; ++t) {
    std::int32_t slots[kRankSlots];
#pragma unroll
    for (int j = 0; j < kRankSlots; ++j) slots[j] = next_slot[j];
    load_slots(t + 1);
    // Compact the destinations of t (in rank order) with a warp ballot.
    int n = 0;
#pragma unroll
    for (int j = 0; j < kRankSlots; ++j) {
      const int d0 = j * 32;
      if (d0 >= G) break;
      const int d = d0 + lane;
      const bool served = pack ? d != me : !a.self_only || d == me;
      const std::int32_t slot = served ? slots[j] : -1;
      const unsigned ballot = __ballot_sync(0xffffffffu, slot >= 0);
      if (slot >= 0) {
        const int k = n + __popc(ballot & ((1u << lane) - 1u));
        route.dst[k] = d;
        route.row[k] = bases.dst_row_base[d] + slot;
        ++sent[j];
      }
      n += __popc(ballot);
    }
    if (lane == 0) route.num_dsts = n;
    __syncwarp();
    // (A token with no destination this launch serves is not even read.)
    if (n > 0) forward_token(a, t, route, pack ? bases.stage_shift : nullptr, bases.own_payload);
    __syncwarp();
    if (pack || a.self_only) continue;  // no peer rows, or the copy stream publishes them
    // NOTE: release after the warp barrier, so every lane's rows precede it; only when the count
    // moved, so no late write can land after the receiver moved on to the next operation.
    // (A channel's tokens number < 2^31 (tokens_per_channel is an int): a 32-bit remainder.)
    if (static_cast<int>(t - t_begin) % a.publish_tokens == a.publish_tokens - 1 || t + 1 == t_end) {
#pragma unroll
      for (int j = 0; j < kRankSlots; ++j) {
        const int d = j * 32 + lane;
        if (d < G && d != me && sent[j] != published[j]) {
          ptx::st_release_sys(RegionLayout::progress(v.peer_base[d], me, channel),
                              static_cast<std::uint64_t>(sent[j]));
          published[j] = sent[j];
        }
      }
    }
  }
}

// Pack: this warp's channels of chunk k are in staging and in the peers' regions; its stores are
// visible system-wide before its count, after which the copy stream may copy the chunk.
__device__ void signal_packed(const HtDispatchArgs& a, int k) {
  ptx::fence_acq_rel_sys();
  __syncwarp();
  if (threadIdx.x % 32 == 0) ptx::red_add_release_sys(a.packed + k, std::uint64_t{1});
}

// A pack launch goes chunk by chunk (each warp counting each chunk done); any other forwards every
// channel in one pass. Warp w of the launch takes channels w, w + warps, ... of each pass.
__device__ void run_sender(const HtDispatchArgs& a) {
  const int G = a.view.num_domain_ranks, me = a.view.domain_rank;
  const int warp = threadIdx.x / 32;
  __shared__ SenderBases bases;
  __shared__ TokenRoute routes[kWarps];
  for (int d = threadIdx.x; d < G; d += blockDim.x) {
    bases.dst_row_base[d] = first_row_on(a.count_matrix, G, me, d);
    bases.stage_shift[d] = a.straight && straight_copies(a.count_matrix[me * G + d], a.num_tokens)
                               ? kNoStaging
                               : first_staged_row(a.count_matrix, G, me, d) - bases.dst_row_base[d];
  }
  if (threadIdx.x == 0)
    bases.own_payload = !a.straight_self || !straight_copies(a.count_matrix[me * G + me], a.num_tokens);
  __syncthreads();
  const int first = blockIdx.x * kWarps + warp, step = a.num_senders * kWarps;
  const int passes = max(1, a.pack_chunks);
  for (int k = 0; k < passes; ++k) {
    const int end = copy_chunk_channel(k + 1, passes, a.num_channels);
    for (int c = copy_chunk_channel(k, passes, a.num_channels) + first; c < end; c += step)
      send_channel(a, c, bases, routes[warp]);
    if (a.pack_chunks > 0) signal_packed(a, k);
  }
}

// One warp copies rows [from, to) of one (source, channel) from this rank's region into the
// outputs.
__device__ void copy_out(const HtDispatchArgs& a, std::int64_t from, std::int64_t to) {
  const HtDispatchLayout& l = a.region;
  warp_copy_rows(l, output_row(a, from), region_row(l, a.view.peer_base[a.view.domain_rank], from),
                 static_cast<std::size_t>(to - from));
}

// Receiver warp `receiver` of `num_receivers`.
__device__ void run_receiver(const HtDispatchArgs& a, int receiver, int num_receivers) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank, C = a.num_channels;
  const int lane = threadIdx.x % 32;

  // Worst-case mode: rows past the real count carry no expert.
  const std::int64_t num_recv = *a.num_recv;
  for (std::int64_t row = num_recv + receiver; row < a.num_rows; row += num_receivers) {
    const DispatchRowDst dst = output_row(a, row);
    if (lane < a.region.num_topk) {
      store_index(dst.topk, lane, a.region.idx_bytes, -1);
      dst.weights[lane] = 0.0f;
    }
    if (lane == 0) *dst.src_idx = -1;
  }

  // Pairs (source s != me, channel c) owned by this warp: p = receiver + i * num_receivers. Each
  // sweep polls every unfinished pair and copies what arrived.
  std::uint64_t last_progress = ptx::globaltimer(), last_check = last_progress;
  unsigned idle_ns = kMinIdlePollNs;
  while (true) {
    bool all_done = true, moved = false;
    for (int p = receiver; p < G * C; p += num_receivers) {
      const int s = p / C, c = p % C;
      if (s == me) continue;
      const std::int32_t total = a.recv_chunk_count[p];
      // rows [start, start + copied) of the pair are already in the outputs
      std::int32_t copied = a.recv_copied[p];
      if (copied >= total) continue;
      all_done = false;
      std::int32_t ready = 0;
      if (lane == 0) {
        // A copy-engine dispatch publishes a chunk at its first channel.
        const int K = a.signal_chunks;
        const int flag_channel = K > 0 ? copy_chunk_channel(c / (C / K), K, C) : c;
        const std::uint64_t* flag = RegionLayout::progress(v.peer_base[me], s, flag_channel);
        ready = static_cast<std::int32_t>(ptx::ld_relaxed_sys(flag));
        if (ready > copied) ready = static_cast<std::int32_t>(ptx::ld_acquire_sys(flag));
      }
      // kChannelComplete (copy engine): the whole channel.
      ready = min(__shfl_sync(0xffffffffu, ready, 0), total);
      if (ready > copied) {
        const std::int64_t start = a.recv_chunk_start[p];
        // Zero-copy: the rows already are the outputs; the receiver only sees them all arrive.
        if (!a.outputs_in_region) copy_out(a, start + copied, start + ready);
        if (lane == 0) a.recv_copied[p] = ready;
        __syncwarp();
        moved = true;
      }
    }
    if (all_done) return;
    const std::uint64_t now = ptx::globaltimer();
    if (moved) {
      last_progress = now;
      idle_ns = kMinIdlePollNs;
      continue;
    }
    ptx::backoff(idle_ns);
    idle_ns = min(2 * idle_ns, kMaxIdlePollNs);
    // NOTE: the status word lives in host memory: read it rarely, or idle pollers flood PCIe.
    if (now - last_check < kStatusCheckNs) continue;
    last_check = now;
    bool stop = false;
    if (lane == 0) stop = timeout_reported(v.status);
    if (__shfl_sync(0xffffffffu, stop, 0)) return;
    if (now - last_progress > v.timeout_ns) {
      if (lane == 0) {
        for (int p = receiver; p < G * C; p += num_receivers) {
          if (p / C != me && a.recv_copied[p] < a.recv_chunk_count[p]) {
            report_failure(v.status, StatusCode::kTimeout, OpId::kDispatch, CounterId::kRowsArrived, v.rank,
                           v.domain_base_rank + p / C, a.recv_chunk_count[p], a.recv_copied[p]);
            break;
          }
        }
      }
      return;
    }
  }
}

// Per-peer telemetry, once per dispatch (by block 0 of the launch that receives): the rows each
// peer gets from this rank and sends to it, with their scales and top-k data.
__device__ void count_dispatch_traffic(const HtDispatchArgs& a) {
  const DomainView& v = a.view;
  const int G = v.num_domain_ranks, me = v.domain_rank;
  const auto row = static_cast<std::uint64_t>(a.region.bytes_per_row());
  for (int p = threadIdx.x; p < G; p += blockDim.x)
    if (p != me)
      count_traffic(v, OpId::kDispatch, p, row * static_cast<std::uint64_t>(a.count_matrix[me * G + p]),
                    row * static_cast<std::uint64_t>(a.count_matrix[p * G + me]));
}

__global__ void __launch_bounds__(kThreads, 1) ht_dispatch_kernel(HtDispatchArgs a) {
  pdl_entry();
  // Rows received by any rank must fit its region and (worst-case mode) its outputs.
  const std::int64_t limit = a.num_worst ? min(a.region.cap_rows, a.num_rows) : a.region.cap_rows;
  if (!rows_fit(a.count_matrix, a.view.num_domain_ranks, limit, true, a.view, OpId::kDispatch)) {
    // NOTE: the copy stream waits for every warp's count of every chunk: a pack that stops still
    // gives them (its host, knowing the same counts, refuses the call before queueing any copy), or
    // the copy stream, and every stream joined to it, would wait forever.
    for (int k = 0; k < a.pack_chunks; ++k) signal_packed(a, k);
    return;
  }
  if (a.phased && blockIdx.x == 0) count_dispatch_traffic(a);
  const int warp = threadIdx.x / 32;
  const bool sender = static_cast<int>(blockIdx.x) < a.num_senders;
  if (sender) run_sender(a);
  // Every warp of the grid copies out once its block's sends are done (senders never wait for
  // receivers, so this cannot deadlock whatever blocks are resident). A pack launch only sends.
  if (a.phased) run_receiver(a, blockIdx.x * kWarps + warp, gridDim.x * kWarps);
}

}  // namespace

void launch_ht_dispatch(const HtDispatchArgs& args, int num_blocks, Launch how, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  launch_kernel(how, ht_dispatch_kernel, num_blocks, kThreads, 0, s, args);
}

}  // namespace epcomm
