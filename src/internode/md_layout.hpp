// Multi-domain high-throughput mode (docs/multi_domain.md): where everything sits in a rank's
// symmetric (NVSHMEM) region. The single source of truth for the host (sizes, hints, refusals) and
// the kernels (every offset). Every rank computes the same layout from the same parameters, so an
// offset names the same bytes on every PE, as NVSHMEM's puts and signals require.
//
// A rank (d, i) exchanges rows over the inter-domain transport only with the ranks (p, i) of the
// same local index in the P = D - 1 other domains; a stream is (peer domain p, channel c), and the
// direction depends on the operation: dispatch sends token rows from their owner to the forwarder
// of each destination domain, combine sends one partial row per (token, domain) back to the owner.
//
//   header, fixed for a region (never moves between operations, so counters persist):
//     [ counters [2 ops][3 kinds][P][kMdMaxChannels] u64                                        ]
//     [ count flags [2 parities][P] u64 | count mailboxes [2 parities][P] x record_capacity_bytes ]
//       (a mailbox: the sender's call signature, then its count record)
//     [ record staging [P] x record_capacity_bytes: the records this rank sends (puts read symmetric
//       memory, so that they can leave through a NIC) ]
//   rings, carved per operation from what remains (every rank carves alike):
//     [ slot flags [P][C][N] u64 | receive rings [P][C][N] slots | send staging [C][S] slots     ]
//
// NOTE: counters are cumulative over the Buffer's life and never reset: a stream's k-th slot
// ever written (k counted from 0) goes to ring slot k % N, and its flag is md_slot_flag(op, stream,
// k), a value no other write in the region's life produces; so flags and counters need no
// clearing between operations even when C, N or the slot size change (the ring is empty at every
// operation boundary: the receiver consumed all, the sender's credits say so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/call_signature.hpp"
#include "internode/md_limits.hpp"
#include "internode/md_slot.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

inline constexpr std::size_t kMdSmallAlignment = 256;  // control sections
enum MdOp : int { kMdOpDispatch = 0, kMdOpCombine = 1, kMdNumOps = 2 };
enum MdCounter : int {
  kMdCredits = 0,   // at a sender: slots of its stream the receiver has consumed (peers add deltas)
  kMdSent = 1,      // at a sender: slots of its stream written so far (its own bookkeeping)
  kMdConsumed = 2,  // at a receiver: slots of the stream consumed so far (its own bookkeeping)
  kMdNumCounters = 3,
};

// Peer domain `other` of domain `me` (other != me) as an index in [0, D - 1).
EPCOMM_HD constexpr int md_peer_index(int me, int other) {
  return other < me ? other : other - 1;
}
// The inverse: the domain of peer index p seen from domain `me`.
EPCOMM_HD constexpr int md_peer_domain(int me, int p) {
  return p < me ? p : p + 1;
}
// The flag of the k-th slot ever written into stream (p, c) of operation op; never 0.
EPCOMM_HD constexpr std::uint64_t md_slot_flag(int op, int peer, int channel, std::uint64_t k) {
  const auto stream = static_cast<std::uint64_t>(peer) * kMdMaxChannels + static_cast<std::uint64_t>(channel);
  return static_cast<std::uint64_t>(op) << 63 | stream << kMdSeqBits | ((k + 1) & kMdSeqMask);
}
// A sender may write its k-th slot of a stream once fewer than N earlier slots await the receiver.
EPCOMM_HD constexpr bool md_may_write(std::uint64_t k, std::uint64_t credits, int ring_slots) {
  return k - credits < static_cast<std::uint64_t>(ring_slots);
}
// A receiver returns credits once it holds this many unreturned slots of a stream (and at the
// stream's end). NOTE: at most N/2, so a sender waiting for its k-th slot (credits >= k - N + 1)
// always finds enough returned once the receiver consumed all k slots before it.
EPCOMM_HD constexpr int md_credit_batch(int ring_slots) {
  return ring_slots / 2 > 1 ? ring_slots / 2 : 1;
}

// The fixed header: depends only on (D, G).
struct MdHeader {
  // A count mailbox, and the staging of what is put into one: [the sender's CallSignature | its
  // MdCountRecord (int32)]. The signature travels even when the record is empty (sync_only).
  static constexpr std::size_t kRecordSignatureBytes = sizeof(CallSignature);

  int num_domains = 0;       // D
  int ranks_per_domain = 0;  // G
  std::size_t counters = 0, count_flags = 0, mailboxes = 0, record_staging = 0, record_capacity_bytes = 0;
  std::size_t total_bytes = 0;

  EPCOMM_HD int num_peers() const { return num_domains - 1; }
  EPCOMM_HD static MdHeader make(int num_domains, int ranks_per_domain) {
    MdHeader h;
    h.num_domains = num_domains;
    h.ranks_per_domain = ranks_per_domain;
    const auto P = static_cast<std::size_t>(num_domains - 1);
    h.counters = 0;
    const std::size_t counter_bytes = sizeof(std::uint64_t) * kMdNumOps * kMdNumCounters * P * kMdMaxChannels;
    h.count_flags = align_up(h.counters + counter_bytes, kMdSmallAlignment);
    h.mailboxes = align_up(h.count_flags + sizeof(std::uint64_t) * 2 * P, kMdSmallAlignment);
    h.record_capacity_bytes =
        align_up(kRecordSignatureBytes + sizeof(std::int32_t) * MdCountRecord::capacity_ints(ranks_per_domain),
                 kMdSmallAlignment);
    h.record_staging = h.mailboxes + 2 * P * h.record_capacity_bytes;
    h.total_bytes = align_up(h.record_staging + P * h.record_capacity_bytes, kRegionAlignment);
    return h;
  }
  EPCOMM_HD std::size_t counter(int op, int kind, int peer, int channel) const {
    const auto P = static_cast<std::size_t>(num_peers());
    return counters + sizeof(std::uint64_t) *
                          (((static_cast<std::size_t>(op) * kMdNumCounters + static_cast<std::size_t>(kind)) * P +
                            static_cast<std::size_t>(peer)) *
                               kMdMaxChannels +
                           static_cast<std::size_t>(channel));
  }
  // Signalled (NVSHMEM_SIGNAL_SET, value: the operation's epoch + 1) once peer p's record is in.
  EPCOMM_HD std::size_t count_flag(int parity, int peer) const {
    return count_flags + sizeof(std::uint64_t) * (static_cast<std::size_t>(parity) * num_peers() + peer);
  }
  EPCOMM_HD std::size_t mailbox(int parity, int peer) const {
    return mailboxes + record_capacity_bytes * (static_cast<std::size_t>(parity) * num_peers() + peer);
  }
  // The record for peer p is built here, then put into p's mailbox. NOTE: reused by the next count
  // exchange, so the put must have completed (quiet) before that one writes it.
  EPCOMM_HD std::size_t staged_record(int peer) const {
    return record_staging + record_capacity_bytes * static_cast<std::size_t>(peer);
  }
};

// One operation's rings: C channels, N slots per (peer, channel) receive ring, S send-staging
// slots per channel, slots of one format (dispatch or combine).
struct MdRings {
  int num_peers = 0;          // P = D - 1
  int num_channels = 0;       // C
  int ring_slots = 0;         // N
  int staging_slots = 0;      // S
  std::size_t slot_stride = 0;
  std::size_t flags = 0, rings = 0, staging = 0, total_bytes = 0;  // offsets from the region's base

  // The rings placed after `header_bytes`, for N slots per ring.
  EPCOMM_HD static MdRings make(std::size_t header_bytes, int num_peers, int num_channels, int ring_slots,
                                int staging_slots, std::size_t slot_stride) {
    MdRings r;
    r.num_peers = num_peers;
    r.num_channels = num_channels;
    r.ring_slots = ring_slots;
    r.staging_slots = staging_slots;
    r.slot_stride = slot_stride;
    const std::size_t ring_count = static_cast<std::size_t>(num_peers) * num_channels * ring_slots;
    r.flags = header_bytes;
    r.rings = align_up(r.flags + sizeof(std::uint64_t) * ring_count, kRegionAlignment);
    r.staging = align_up(r.rings + slot_stride * ring_count, kRegionAlignment);
    r.total_bytes = align_up(r.staging + slot_stride * static_cast<std::size_t>(num_channels) * staging_slots,
                             kRegionAlignment);
    return r;
  }
  // The most slots per ring that fit in `region_bytes` (0 when not even one does).
  EPCOMM_HD static int fit_ring_slots(std::size_t region_bytes, std::size_t header_bytes, int num_peers,
                                      int num_channels, int staging_slots, std::size_t slot_stride) {
    const MdRings none = make(header_bytes, num_peers, num_channels, 0, staging_slots, slot_stride);
    if (num_peers == 0 || num_channels == 0 || region_bytes <= none.total_bytes) return 0;
    // Each ring slot costs its stride and its flag; page alignment may cost a little more, so the
    // estimate is walked down (a few steps at most) until it fits.
    const std::size_t per_slot = (slot_stride + sizeof(std::uint64_t)) * num_peers * num_channels;
    std::size_t n = (region_bytes - none.total_bytes) / per_slot;
    if (n > static_cast<std::size_t>(kMdMaxRingSlots)) n = kMdMaxRingSlots;
    while (n > 0 && make(header_bytes, num_peers, num_channels, static_cast<int>(n), staging_slots, slot_stride)
                            .total_bytes > region_bytes)
      --n;
    return static_cast<int>(n);
  }
  EPCOMM_HD std::size_t ring_index(int peer, int channel, std::uint64_t k) const {
    return (static_cast<std::size_t>(peer) * num_channels + channel) * ring_slots +
           static_cast<std::size_t>(k % static_cast<std::uint64_t>(ring_slots));
  }
  EPCOMM_HD std::size_t flag(int peer, int channel, std::uint64_t k) const {
    return flags + sizeof(std::uint64_t) * ring_index(peer, channel, k);
  }
  EPCOMM_HD std::size_t slot(int peer, int channel, std::uint64_t k) const {
    return rings + slot_stride * ring_index(peer, channel, k);
  }
  EPCOMM_HD std::size_t staging_slot(int channel, std::uint64_t k) const {
    return staging + slot_stride * (static_cast<std::size_t>(channel) * staging_slots +
                                    static_cast<std::size_t>(k % static_cast<std::uint64_t>(staging_slots)));
  }
};

// Everything one operation needs about the symmetric region.
struct MdSymmetricLayout {
  MdHeader header;
  MdSlot slot;
  MdRings rings;

  EPCOMM_HD std::size_t total_bytes() const { return rings.total_bytes; }
  // The layout of a region of `region_bytes` (as many ring slots as fit, ring_slots 0 if none).
  EPCOMM_HD static MdSymmetricLayout fit(std::size_t region_bytes, int num_domains, int ranks_per_domain,
                                         int num_channels, int staging_slots, const MdSlot& slot) {
    MdSymmetricLayout l;
    l.header = MdHeader::make(num_domains, ranks_per_domain);
    l.slot = slot;
    const int n = MdRings::fit_ring_slots(region_bytes, l.header.total_bytes, l.header.num_peers(), num_channels,
                                          staging_slots, slot.stride);
    l.rings = MdRings::make(l.header.total_bytes, l.header.num_peers(), num_channels, n, staging_slots,
                            slot.stride);
    return l;
  }
  // The layout with exactly `ring_slots` per ring (sizing: total_bytes() is what it needs).
  EPCOMM_HD static MdSymmetricLayout make(int num_domains, int ranks_per_domain, int num_channels,
                                          int ring_slots, int staging_slots, const MdSlot& slot) {
    MdSymmetricLayout l;
    l.header = MdHeader::make(num_domains, ranks_per_domain);
    l.slot = slot;
    l.rings = MdRings::make(l.header.total_bytes, l.header.num_peers(), num_channels, ring_slots, staging_slots,
                            slot.stride);
    return l;
  }
};

static_assert(std::is_trivially_copyable_v<MdSymmetricLayout>, "kernels receive the layout by value");

}  // namespace epcomm
