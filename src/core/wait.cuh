// Bounded spin-waits on peers. A wait that runs out records what it waited for in the status word
// (first failure wins) and returns false; the caller then stops its work and exits, and the host
// turns the status into an epcomm::Error naming the rank, the peer, the operation and the counter.
#pragma once

#include <cstdint>

#include "core/domain_view.hpp"
#include "core/ptx.cuh"
#include "core/wait_limit.hpp"

namespace epcomm {

// True when global rank `rank` is masked on this rank (SPEC "Rank masking"): no wait waits on it,
// nothing is sent to it, nothing it left behind is read.
__device__ __forceinline__ bool rank_masked(const DomainView& v, int rank) {
  return v.masked != nullptr && v.masked[rank] != 0;
}
// The same by domain index.
__device__ __forceinline__ bool peer_masked(const DomainView& v, int domain_rank) {
  return rank_masked(v, v.domain_base_rank + domain_rank);
}

// Records a failure in the status word; the first one wins.
// `peer_domain`: the peer's NVLink domain where the waiter knows it (multi-domain mode), else -1.
__device__ __forceinline__ void report_failure(DeviceStatus* status, StatusCode code, OpId op,
                                               CounterId counter, int rank, int peer, std::int64_t expected,
                                               std::int64_t observed, int peer_domain = -1,
                                               std::int32_t detail = 0) {
  if (status == nullptr) return;
  if (atomicCAS(&status->code, 0, -1) != 0) return;  // someone already reported (-1: being written)
  status->op = static_cast<std::int32_t>(op);
  status->counter = static_cast<std::int32_t>(counter);
  status->rank = rank;
  status->peer = peer;
  status->peer_domain = peer_domain + 1;
  status->detail = detail;
  status->expected = expected;
  status->observed = observed;
  __threadfence_system();
  atomicExch(&status->code, static_cast<std::int32_t>(code));
  __threadfence_system();
}

// How often a waiter looks at the (host-resident) status word and its deadline.
inline constexpr std::uint64_t kStatusCheckNs = 100000;
// Polls before a waiter starts sleeping between polls, and how long it sleeps.
inline constexpr std::uint32_t kQuickPolls = 32;
inline constexpr unsigned kMinBackoffNs = 64;
inline constexpr unsigned kMaxBackoffNs = 512;

// True once a wait on this rank timed out: a peer is gone, so other waiters stop early rather than
// burn their own timeouts. Only a timeout counts: a kernel that reports anything else (an invalid
// expert id, rows that do not fit) still runs its protocol to the end, so its peers get their
// signals and credits; a waiter that stopped on such a report would withhold its own and leave
// the next operation waiting for them.
__device__ __forceinline__ bool timeout_reported(const DeviceStatus* status) {
  return status != nullptr && *reinterpret_cast<const volatile std::int32_t*>(&status->code) ==
                                  static_cast<std::int32_t>(StatusCode::kTimeout);
}

// True once this rank's timeout or a peer's different call is recorded: the multi-domain kernels
// behind a count exchange or opening synchronisation that failed stop at once (a multi-domain
// notify leaves no counts after either; the single-domain kernels are stopped by the count matrix
// their notify fills with INT32_MAX, ht_guard.cuh). Only those: a low-latency kernel that sees a
// mismatch still gives its credits (ll_sync.cuh).
__device__ __forceinline__ bool sync_failed(const DeviceStatus* status) {
  if (status == nullptr) return false;
  const std::int32_t code = *reinterpret_cast<const volatile std::int32_t*>(&status->code);
  return code == static_cast<std::int32_t>(StatusCode::kTimeout) ||
         code == static_cast<std::int32_t>(StatusCode::kPeerMismatch);
}

// Who waits, for how long, and where a timeout is recorded.
struct WaitBound {
  std::uint64_t timeout_ns;
  DeviceStatus* status;  // may be null: nothing is recorded
  int rank;              // the rank that waits (named in the report)
  // When given, receives how long a wait that had to poll took (ns); left alone when the first
  // look saw the value (the fast path reads no clock).
  std::uint64_t* polled_ns = nullptr;
  // When given, the waited-on peer's entry of the rank mask (DomainView::masked): a masked peer is
  // not waited on.
  const std::uint8_t* peer_masked = nullptr;
};

// How a wait looks at its counter.
//  - kRelaxed: relaxed polls, then one acquire load once a poll sees the value (two round trips
//    when it is already there). For waits beside warps that move data: an acquire at system scope
//    also invalidates the SM's whole L1 (CCTL.IVALL in SASS), and spinning on it would stall every
//    warp of the SM, the ones moving data included.
//  - kAcquire: every look is an acquire, and the one that sees the value is the wait's acquire (one
//    round trip when it is already there). For a block that waits with nothing else to do.
enum class Polls { kRelaxed, kAcquire };

// The polling of a wait whose first look failed: looks (`look()`) until `reached(observed)`, backing
// off after a few quick polls, and every 64 polls reads the clock: every kStatusCheckNs the status
// word (another wait's timeout stops this one) and the wait's limit. Returns true with `observed`
// the value that reached; false on timeout (recorded in bound.status, naming op, counter_id, peer,
// `expected` and what it last saw) or another wait's. A wait that had to poll stores its time in
// bound.polled_ns, when given (so far, when it fails). `reported(observed)` is what a timeout's
// report names as observed (the value itself by default).
struct ObservedAsIs {
  template <typename T>
  __device__ std::int64_t operator()(T observed) const {
    return static_cast<std::int64_t>(observed);
  }
};
template <typename T, typename Look, typename Reached, typename Reported = ObservedAsIs>
__device__ __forceinline__ bool poll_until(Look look, Reached reached, T& observed, const WaitBound& bound,
                                           OpId op, CounterId counter_id, int peer, std::int64_t expected,
                                           int peer_domain = -1, Reported reported = {}) {
  const std::uint64_t start = ptx::globaltimer();
  std::uint64_t last_check = start;
  std::uint32_t spins = 0;
  while (true) {
    observed = look();
    if (reached(observed)) {
      if (bound.polled_ns != nullptr) *bound.polled_ns = ptx::globaltimer() - start;
      return true;
    }
    // Back off after a few quick polls: many spinning warps would otherwise crowd the memory
    // system that the awaited data arrives through. The sleep stays short to keep latency low.
    if (++spins > kQuickPolls) ptx::backoff(spins > 4 * kQuickPolls ? kMaxBackoffNs : kMinBackoffNs);
    if ((spins & 63u) != 0) continue;
    const std::uint64_t now = ptx::globaltimer();
    // NOTE: the status word lives in host memory: read it rarely, or waiters flood PCIe.
    if (now - last_check < kStatusCheckNs) continue;
    last_check = now;
    if (bound.polled_ns != nullptr) *bound.polled_ns = now - start;  // so far: a failed wait counts too
    if (timeout_reported(bound.status)) return false;
    if (now - start > wait_limit_ns(bound.timeout_ns, peer == bound.rank)) {
      report_failure(bound.status, StatusCode::kTimeout, op, counter_id, bound.rank, peer, expected,
                     reported(observed), peer_domain);
      return false;
    }
  }
}

// Waits until *counter >= expected (acquire, system scope). Returns false on timeout (recorded in
// bound.status, naming op, counter_id and peer) or when another wait already timed out. `seen`, if
// given, receives the value acquired (a waiter may skip later waits for no more than that).
template <Polls kPolls = Polls::kRelaxed, typename T>
__device__ __forceinline__ bool wait_at_least(const T* counter, T expected, const WaitBound& bound, OpId op,
                                              CounterId counter_id, int peer, T* seen = nullptr,
                                              int peer_domain = -1) {
  constexpr bool kAcquireLooks = kPolls == Polls::kAcquire;
  auto look = [&] { return kAcquireLooks ? ptx::ld_acquire_sys(counter) : ptx::ld_relaxed_sys(counter); };
  // The value a look saw reaching `expected`: with relaxed looks, acquired by one more load.
  auto acquire = [&](T observed) {
    const T value = kAcquireLooks ? observed : ptx::ld_acquire_sys(counter);
    if (seen != nullptr) *seen = value;
    return value >= expected;
  };
  T observed = look();
  if (observed >= expected) return acquire(observed);
  // NOTE: the mask is read only once the first look failed: the common case pays no extra load
  // (after an acquire at system scope it would come from L2).
  if (bound.peer_masked != nullptr && *bound.peer_masked != 0) {
    if (seen != nullptr) *seen = expected;
    return true;
  }
  if (!poll_until(
          look, [&](T o) { return o >= expected; }, observed, bound, op, counter_id, peer,
          static_cast<std::int64_t>(expected), peer_domain))
    return false;
  return acquire(observed);
}

// Per-peer telemetry: adds `bytes_sent` and `bytes_received` to (op, domain peer) of the view's
// table, when there is one.
__device__ __forceinline__ void count_traffic(const DomainView& v, OpId op, int domain_peer,
                                              std::uint64_t bytes_sent, std::uint64_t bytes_received) {
  if (v.telemetry == nullptr) return;
  PeerCounters& c = v.telemetry[static_cast<int>(op) * kTelemetryPeers + domain_peer];
  if (bytes_sent != 0) atomicAdd(&c.bytes_sent, static_cast<unsigned long long>(bytes_sent));
  if (bytes_received != 0) atomicAdd(&c.bytes_received, static_cast<unsigned long long>(bytes_received));
}

// Per-peer telemetry: one wait on domain peer `peer` (a global rank) that had to poll for `polled_ns`.
__device__ __forceinline__ void count_wait(const DomainView& view, OpId op, int peer,
                                           std::uint64_t polled_ns) {
  if (view.telemetry == nullptr) return;
  PeerCounters& c = view.telemetry[static_cast<int>(op) * kTelemetryPeers + (peer - view.domain_base_rank)];
  atomicAdd(&c.wait_ns, static_cast<unsigned long long>(polled_ns));
  atomicAdd(&c.waits, 1ull);
}

// The same, bounded by a domain's timeout and status word. A masked peer is never waited on: the
// wait succeeds at once (`seen` gets `expected`, or what the counter already held), and the caller
// must not read what the peer left. A wait that had to poll adds its time to the view's telemetry
// (op, peer).
template <Polls kPolls = Polls::kRelaxed, typename T>
__device__ __forceinline__ bool wait_at_least(const T* counter, T expected, const DomainView& view, OpId op,
                                              CounterId counter_id, int peer, T* seen = nullptr) {
  std::uint64_t polled_ns = 0;
  const WaitBound bound{view.timeout_ns, view.status, view.rank,
                        view.telemetry != nullptr ? &polled_ns : nullptr,
                        view.masked != nullptr ? view.masked + peer : nullptr};
  const bool ok = wait_at_least<kPolls>(counter, expected, bound, op, counter_id, peer, seen);
  if (polled_ns != 0) count_wait(view, op, peer, polled_ns);
  return ok;
}

// Waits until the word at `word` is one that `is_current` accepts (a word that carries its own tag,
// written whole by a peer: no flag and no acquire, the value is the data), bounded by the view's
// timeout and status word as wait_at_least's DomainView form. A masked peer is not waited on: true
// at once, with whatever the word held (the caller must not use it). A timeout's report names
// `expected` and `tag_of(the last word seen)`. The word read into `value`; how long it polled into
// `polled_ns` (0 when the first look saw it; with telemetry on, else 0): the caller counts it
// (count_wait), once for the lanes that wait together.
template <typename IsCurrent, typename TagOf>
__device__ __forceinline__ bool wait_tagged(const std::uint64_t* word, IsCurrent is_current, TagOf tag_of,
                                            std::int64_t expected, const DomainView& view, OpId op,
                                            CounterId counter_id, int peer, std::uint64_t& value,
                                            std::uint64_t& polled_ns) {
  polled_ns = 0;
  value = ptx::ld_relaxed_sys(word);
  if (is_current(value)) return true;
  if (view.masked != nullptr && view.masked[peer] != 0) return true;
  const WaitBound bound{view.timeout_ns, view.status, view.rank,
                        view.telemetry != nullptr ? &polled_ns : nullptr, nullptr};
  return poll_until([&] { return ptx::ld_relaxed_sys(word); }, is_current, value, bound, op, counter_id, peer,
                    expected, -1, tag_of);
}

}  // namespace epcomm
