// Multi-domain notify (docs/multi_domain.md, "Dispatch" steps 1-2): the count exchange across
// domains, then within the domain. One block. Built into epcomm_nvshmem.
//
// Rank (d, i):
//   1. scans is_token_in_rank per channel: rows to every rank, tokens to every domain;
//   2. puts one MdCountRecord into the mailbox of the forwarder (p, i) of every other domain p
//      (put with signal: the count flag [parity][peer] becomes the epoch), and waits for theirs;
//   3. as forwarder of its streams: the handle's fwd_prefix / fwd_len from the records;
//   4. writes one MdDomainRecord into every rank (d, j)'s NVLink mailbox of source i, releases its
//      flag, and waits for the G records written to it;
//   5. from them: the [R][G] count matrix, its received rows and per-expert counts.
// Steps 2 and 4 also order operations: a rank starts sending rows of an operation only after every
// peer it sends to (and, within the domain, writes to) has finished the previous one (a peer
// publishes its record only after its previous kernels ended), so rings and regions may change
// their layout between operations. The cached dispatch runs them with empty records (sync_only).
#include <climits>
#include <cstdint>

#include "core/call_signature.cuh"
#include "core/cuda_check.hpp"
#include "internode/md_streams.cuh"
#include "internode/md_tables.hpp"

namespace epcomm {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
// A domain mailbox: [flag u64 | pad | the writer's CallSignature at 32 | MdDomainRecord at 64].
constexpr std::size_t kDomainSignatureOffset = 32;
constexpr std::size_t kDomainRecordOffset = MdDomainRecord::kOffsetBytes;
static_assert(kDomainSignatureOffset >= sizeof(std::uint64_t) &&
              kDomainSignatureOffset + sizeof(CallSignature) <= kDomainRecordOffset);

__device__ std::int32_t* domain_record(void* region, int parity, int src) {
  return reinterpret_cast<std::int32_t*>(RegionLayout::mailbox(region, parity, src) + kDomainRecordOffset);
}
__device__ std::uint64_t* domain_flag(void* region, int parity, int src) {
  return reinterpret_cast<std::uint64_t*>(RegionLayout::mailbox(region, parity, src));
}
__device__ CallSignature* domain_signature(void* region, int parity, int src) {
  return reinterpret_cast<CallSignature*>(RegionLayout::mailbox(region, parity, src) +
                                          kDomainSignatureOffset);
}
// The count record in a count mailbox or its staging, after the signature (MdHeader).
__device__ std::int32_t* count_record(char* mailbox) {
  return reinterpret_cast<std::int32_t*>(mailbox + MdHeader::kRecordSignatureBytes);
}

// Rank (me_domain, me_local) of D domains of G ranks, C channels, nle local experts per rank.
struct Geometry : md::Geom {
  int nle;
  __device__ explicit Geometry(const MdNotifyArgs& a) : md::Geom(md::Geom::of(a)), nle(a.num_local_experts) {}
};

// scan[c][r] = rows channel c sends to rank r; scan[C*R + c*D + d] = its tokens reaching domain d.
__device__ void scan_channels(const MdNotifyArgs& a, const Geometry& g) {
  for (int q = threadIdx.x; q < g.C * g.R; q += blockDim.x)
    a.scan[q] = md_scan_rank(a.is_token_in_rank, a.num_tokens, g.R, g.C, q / g.R, q % g.R);
  std::int32_t* to_domain = a.scan + g.C * g.R;
  for (int q = threadIdx.x; q < g.C * g.D; q += blockDim.x)
    to_domain[q] = md_scan_domain(a.is_token_in_rank, a.num_tokens, g.R, g.G, g.C, q / g.D, q % g.D);
}

// The record for domain d, from the scan, into `rec` (MdCountRecord layout).
__device__ void build_record(const MdNotifyArgs& a, const Geometry& g, int d, std::int32_t* rec) {
  const MdCountRecord f{g.C, g.G, g.nle};
  for (int q = threadIdx.x; q < f.ints(); q += blockDim.x)
    rec[q] = md_record_entry(f, q, g.R, g.D, d, a.scan, a.scan + g.C * g.R, a.num_tokens_per_expert);
}

// The operation the signature names (what a mismatch report calls this rank's call).
__device__ OpId op_of(const MdNotifyArgs& a) {
  return static_cast<OpId>(a.signature.get(SigField::kOp));
}
// What a timeout here calls the operation: the combine whose opening synchronisation this is, or
// dispatch's count exchange (a cached dispatch's included).
__device__ OpId waiting_op(const MdNotifyArgs& a) {
  return op_of(a) == OpId::kCombine ? OpId::kCombine : OpId::kNotify;
}

// How step 2 ended (the same in every thread).
enum class Exchanged { kOk, kTimedOut, kMismatch };

// Step 2: records out, records in. Not kOk when a peer's record did not come or was made by another
// call (recorded), or when `failed_before` (thread 0's look at the status word at the kernel's entry:
// a failure recorded before this call, e.g. by a combine's opening synchronisation the host did
// not wait for) says the ranks' exchanges may be out of step: then nothing is put and nothing waited for.
__device__ Exchanged exchange_records(const MdNotifyArgs& a, const Geometry& g, std::uint64_t epoch,
                                      bool failed_before) {
  const MdHeader& h = a.header;
  const int parity = static_cast<int>(epoch & 1u);
  const MdCountRecord f{g.C, g.G, g.nle};
  const std::size_t bytes = MdHeader::kRecordSignatureBytes +
                            (a.sync_only ? 0 : sizeof(std::int32_t) * static_cast<std::size_t>(f.ints()));
  for (int p = threadIdx.x; p < g.D - 1; p += blockDim.x)
    store_signature(md::at<CallSignature>(a.place, h.staged_record(p)), a.signature);
  if (!a.sync_only)
    for (int p = 0; p < g.D - 1; ++p)
      build_record(a, g, md_peer_domain(g.me_domain, p),
                   count_record(md::at<char>(a.place, h.staged_record(p))));
  // NOTE: the records must be visible to whatever reads them for the put (a NIC included).
  ptx::fence_acq_rel_sys();
  if (__syncthreads_or(failed_before)) return Exchanged::kTimedOut;
  const int warp = threadIdx.x / 32;
  for (int p = warp; p < g.D - 1; p += kWarps) {
    const int d = md_peer_domain(g.me_domain, p);
    const int slot = md_peer_index(d, g.me_domain);  // this rank as seen from domain d
    std::uint64_t* flag = md::at<std::uint64_t>(a.place, h.count_flag(parity, slot));
    md::put_signal_set_warp(md::at<char>(a.place, h.mailbox(parity, slot)),
                            md::at<char>(a.place, h.staged_record(p)), bytes, flag, epoch,
                            d * g.G + g.me_local);
  }
  // NOTE: the staged records are rewritten by the next exchange: every put has left by then.
  md::quiet();
  bool ok = true, mismatch = false;
  for (int p = threadIdx.x; p < g.D - 1 && ok; p += blockDim.x) {
    const int d = md_peer_domain(g.me_domain, p);
    const int peer = d * g.G + g.me_local;
    ok = md::wait_geq(md::at<std::uint64_t>(a.place, h.count_flag(parity, p)), epoch, a.view, waiting_op(a),
                      CounterId::kMdCountRecord, peer, d);
    // A peer that made another call (shape, top-k, num_sms, operation) laid out its record and its
    // rows differently: stop here, as after a timeout, rather than route rows by them.
    if (ok && !signature_matches(md::at<CallSignature>(a.place, h.mailbox(parity, p)), a.signature, a.view,
                                 op_of(a), peer, d)) {
      ok = false;
      mismatch = true;
    }
  }
  if (__syncthreads_and(ok)) return Exchanged::kOk;
  return __syncthreads_or(mismatch) ? Exchanged::kMismatch : Exchanged::kTimedOut;
}

// Step 4's publication to domain peer j: `sig`, then the domain flag of this exchange.
// NOTE: a release: this thread's signature, and every thread's record before the caller's block
// barrier, precede the flag.
__device__ void publish_in_domain(const MdNotifyArgs& a, const Geometry& g, int j, const CallSignature& sig,
                                  std::uint64_t epoch) {
  const int parity = static_cast<int>(epoch & 1u);
  store_signature(domain_signature(a.view.peer_base[j], parity, g.me_local), sig);
  ptx::st_release_sys(domain_flag(a.view.peer_base[j], parity, g.me_local), epoch);
}

// After a mismatch in step 2: this rank's domain peers are told at once, by a signature whose
// operation is kSigOpStopped under the domain flag of this exchange, instead of waiting for its
// domain records until their timeout. (After a timeout they time out as well: that peer is gone.)
__device__ void tell_domain_stopped(const MdNotifyArgs& a, const Geometry& g, std::uint64_t epoch) {
  CallSignature stopped = a.signature;
  stopped.set(SigField::kOp, kSigOpStopped);
  const int j = static_cast<int>(threadIdx.x);
  if (j < g.G && j != g.me_local) publish_in_domain(a, g, j, stopped, epoch);
}

// The count record received from (s, me_local); null for s = me_domain (its own scan stands in).
__device__ const std::int32_t* record_from(const MdNotifyArgs& a, const Geometry& g, int parity, int s) {
  return s == g.me_domain
             ? nullptr
             : count_record(md::at<char>(a.place, a.header.mailbox(parity, md_peer_index(g.me_domain, s))));
}

// Step 3: this rank forwards the streams of (s, me_local) for every s; its own domain's from the scan.
__device__ void forwarder_tables(const MdNotifyArgs& a, const Geometry& g, int parity) {
  const MdCountRecord f{g.C, g.G, g.nle};
  for (int q = threadIdx.x; q < g.D * g.G; q += blockDim.x) {
    const int s = q / g.G, j = q % g.G;
    const std::int32_t* rec = record_from(a, g, parity, s);
    md_fill_prefix(f, rec, a.scan, g.R, g.me_domain, j,
                   a.fwd_prefix + static_cast<std::size_t>(s) * (g.C + 1) * g.G);
    if (j == 0)
      for (int c = 0; c < g.C; ++c) a.fwd_len[s * g.C + c] = rec == nullptr ? 0 : rec[f.tokens(c)];
  }
}

// Step 4, out: the MdDomainRecord of rank (me_domain, j), written into j's mailbox of source me_local.
__device__ void write_domain_records(const MdNotifyArgs& a, const Geometry& g, int parity) {
  const MdCountRecord f{g.C, g.G, g.nle};
  const MdDomainRecord out{g.D, g.G, g.nle};
  const int n = a.sync_only ? 0 : out.ints();
  auto record_of = [&](int s) { return record_from(a, g, parity, s); };
  for (int q = threadIdx.x; q < g.G * n; q += blockDim.x) {
    const int j = q / n, k = q % n;
    domain_record(a.view.peer_base[j], parity, g.me_local)[k] =
        md_domain_record_entry(f, out, k, g.me_domain, j, a.fwd_prefix, a.num_tokens_per_expert, record_of);
  }
}

// Step 4: records to the domain, then from it. False on a timeout or another call (recorded).
__device__ bool exchange_in_domain(const MdNotifyArgs& a, const Geometry& g, std::uint64_t epoch) {
  const int parity = static_cast<int>(epoch & 1u);
  write_domain_records(a, g, parity);
  __syncthreads();
  bool ok = true;
  if (threadIdx.x < g.G) {
    const int j = threadIdx.x;
    publish_in_domain(a, g, j, a.signature, epoch);
    const int peer = a.view.domain_base_rank + j;
    ok = wait_at_least(domain_flag(a.view.peer_base[g.me_local], parity, j), epoch, a.view, waiting_op(a),
                       CounterId::kCountsReady, peer);
    // NOTE: no rank is masked here: a multi-domain Buffer refuses masks (Buffer::Impl::set_masked).
    ok = ok && signature_matches(domain_signature(a.view.peer_base[g.me_local], parity, j), a.signature,
                                 a.view, op_of(a), peer);
  }
  return __syncthreads_and(ok);
}

// Step 5: the count matrix and what this rank receives.
__device__ void domain_counts(const MdNotifyArgs& a, const Geometry& g, int parity) {
  const MdDomainRecord f{g.D, g.G, g.nle};
  void* mine = a.view.peer_base[g.me_local];
  for (int q = threadIdx.x; q < g.R * g.G; q += blockDim.x) {
    const int r = q / g.G, j = q % g.G;  // r = s * G + i: forwarder i's record holds it
    a.count_matrix[q] = domain_record(mine, parity, r % g.G)[f.count(r / g.G, j)];
  }
  const MdHostCounts slots{g.nle, g.G};
  for (int e = threadIdx.x; e < g.nle; e += blockDim.x) {
    std::int32_t n = 0;
    for (int i = 0; i < g.G; ++i) n += domain_record(mine, parity, i)[f.per_expert(e)];
    n = (n + a.expert_alignment - 1) / a.expert_alignment * a.expert_alignment;
    a.num_recv_per_expert[e] = n;
    if (a.host_counts != nullptr) a.host_counts[slots.per_expert() + e] = n;
  }
  __syncthreads();
  for (int j = threadIdx.x; j < g.G; j += blockDim.x) {
    std::int32_t n = 0;
    for (int r = 0; r < g.R; ++r) n += a.count_matrix[r * g.G + j];
    if (j == g.me_local) *a.num_recv = n;
    if (a.host_counts != nullptr) {
      a.host_counts[slots.domain_totals() + j] = n;
      if (j == g.me_local) a.host_counts[MdHostCounts::kTotal] = n;
    }
  }
}

__global__ void __launch_bounds__(kThreads, 1) md_notify_kernel(MdNotifyArgs a) {
  // Read now, used at step 2's barrier: the host-memory read's round trip overlaps the scan.
  const bool failed_before = threadIdx.x == 0 && sync_failed(a.view.status);
  const Geometry g(a);
  __shared__ std::uint64_t epoch;
  if (threadIdx.x == 0) epoch = *a.notify_epoch + 1;
  // This rank's progress words (0: rows from forwarder s; 1: combine's "rows staged", s = itself):
  // the domain's ranks write them only after step 4.
  for (int q = threadIdx.x; q < 2 * g.G; q += blockDim.x)
    *RegionLayout::progress(a.view.peer_base[g.me_local], q / 2, q % 2) = 0;
  // The slot flags of this operation's rings: no sender puts into them before step 2 (it waits for
  // this rank's record), and every slot of the previous operation was consumed. NOTE: the flags'
  // values are unique anyway (md_slot_flag), but where the layout moved, a flag word may hold an
  // earlier layout's payload bytes: cleared, no data can pass for a flag.
  auto* flags = md::at<std::uint64_t>(a.place, a.rings.flags);
  const std::size_t num_flags =
      static_cast<std::size_t>(a.rings.num_peers) * a.rings.num_channels * a.rings.ring_slots;
  for (std::size_t f = threadIdx.x; f < num_flags; f += blockDim.x) flags[f] = 0;
  if (!a.sync_only) scan_channels(a, g);
  __syncthreads();
  const int parity = static_cast<int>(epoch & 1u);
  // On a failure the kernels behind this one see it in the status word and stop (sync_failed).
  const Exchanged records = exchange_records(a, g, epoch, failed_before);
  if (records == Exchanged::kMismatch) {
    tell_domain_stopped(a, g, epoch);
    if (threadIdx.x == 0) *a.notify_epoch = epoch;  // in step with the domain ranks it told
  }
  if (records != Exchanged::kOk) return;
  if (!a.sync_only) forwarder_tables(a, g, parity);
  __syncthreads();
  const bool ok = exchange_in_domain(a, g, epoch);
  if (threadIdx.x == 0) *a.notify_epoch = epoch;
  if (!ok || a.sync_only) return;
  domain_counts(a, g, parity);
  if (a.host_ready == nullptr) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    // NOTE: a release after the block barrier: every thread's host counts precede the word.
    ptx::st_release_sys(a.host_ready, a.host_ready_seq);
  }
}

}  // namespace

void launch_md_notify(const MdNotifyArgs& args, void* stream) {
  md_notify_kernel<<<1, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  EPCOMM_CUDA_CHECK_LAUNCH();
}

}  // namespace epcomm
