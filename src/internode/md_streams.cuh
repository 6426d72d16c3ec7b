// What the multi-domain kernels share beyond the NVSHMEM calls (md_device.cuh): the rank's place
// among the domains, and the forwarders' polling of their streams. Device code (epcomm_nvshmem).
#pragma once

#include <cstdint>

#include "internode/md_device.cuh"

namespace epcomm::md {

// Rank (me_domain, me_local) of D domains of G ranks; C channels.
struct Geom {
  int G, D, R, C, me_domain, me_local, my_rank;
  // Args: any of md_args.hpp's kernel arguments (view, place, num_channels).
  template <typename Args>
  __device__ static Geom of(const Args& a) {
    const int G = a.view.num_domain_ranks, D = a.place.num_domains;
    return {G, D, G * D, a.num_channels, a.place.domain, a.view.domain_rank, a.view.rank};
  }
};

inline constexpr unsigned kMinIdlePollNs = 256;
inline constexpr unsigned kMaxIdlePollNs = 4096;

// The whole warp: polls its streams (peer, c), peer = first_peer, first_peer + kMdWarpsPerBlock,
// ..., in turn: step(peer) moves what it can of one stream (never waiting) and says whether it
// moved anything; a stream is done once streams[peer][c].consumed reaches its length (fwd_len of
// the peer's domain). A sweep that moved calls moved(). Once all are done, adds each stream's length
// to the header counter (op, kind, peer, c) and returns true. False when nothing moved for the
// timeout (the first unfinished stream recorded under op_id / counter, naming its peer and its
// domain) or when another wait of this rank timed out.
template <typename Args, typename Step, typename Moved>
__device__ bool poll_streams(const Args& a, const Geom& g, int c, int first_peer, int op, int kind,
                             OpId op_id, CounterId counter, Step step, Moved moved_hook) {
  auto length = [&](int peer) { return a.fwd_len[md_peer_domain(g.me_domain, peer) * g.C + c]; };
  auto done = [&](int peer) { return a.streams[peer * g.C + c].consumed >= length(peer); };
  std::uint64_t last_progress = ptx::globaltimer(), last_check = last_progress;
  unsigned idle_ns = kMinIdlePollNs;
  while (true) {
    bool all_done = true, moved = false;
    for (int peer = first_peer; peer < g.D - 1; peer += kMdWarpsPerBlock) {
      if (done(peer)) continue;
      all_done = false;
      moved = step(peer) || moved;
    }
    if (moved) moved_hook();
    if (all_done) break;
    const std::uint64_t now = ptx::globaltimer();
    if (moved) {
      last_progress = now;
      idle_ns = kMinIdlePollNs;
      continue;
    }
    ptx::backoff(idle_ns);
    idle_ns = min(2 * idle_ns, kMaxIdlePollNs);
    if (now - last_check < kStatusCheckNs) continue;  // the status word is host memory: read it rarely
    last_check = now;
    bool stop = false;
    if (threadIdx.x % 32 == 0) stop = sync_failed(a.view.status);
    if (__shfl_sync(0xffffffffu, stop, 0)) return false;
    if (now - last_progress <= a.view.timeout_ns) continue;
    if (threadIdx.x % 32 == 0)
      for (int peer = first_peer; peer < g.D - 1; peer += kMdWarpsPerBlock) {
        if (done(peer)) continue;
        const int s = md_peer_domain(g.me_domain, peer);
        report_failure(a.view.status, StatusCode::kTimeout, op_id, counter, g.my_rank, s * g.G + g.me_local,
                       length(peer), a.streams[peer * g.C + c].consumed, s);
        break;
      }
    return false;
  }
  if (threadIdx.x % 32 == 0)
    for (int peer = first_peer; peer < g.D - 1; peer += kMdWarpsPerBlock)
      *at<std::uint64_t>(a.place, a.sym.header.counter(op, kind, peer, c)) +=
          static_cast<std::uint64_t>(length(peer));
  __syncwarp();
  return true;
}

}  // namespace epcomm::md
