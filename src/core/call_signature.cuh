// Device side of the call signature (call_signature.hpp): publishing it into a peer's memory and
// checking a peer's against this call's. Device code only.
#pragma once

#include <cstdint>

#include "core/call_signature.hpp"
#include "core/wait.cuh"

namespace epcomm {

// One thread stores this call's signature at `dst` (a peer's mailbox or control block, or this
// rank's own staging of it). Plain stores: the caller's release of the flag or signal that follows
// publishes them with the rest of what it tells the peer.
__device__ __forceinline__ void store_signature(CallSignature* dst, const CallSignature& sig) {
  auto* to = reinterpret_cast<std::uint64_t*>(dst);
  const auto* from = reinterpret_cast<const std::uint64_t*>(&sig);
#pragma unroll
  for (int w = 0; w < static_cast<int>(sizeof(CallSignature) / sizeof(std::uint64_t)); ++w) to[w] = from[w];
}

// Compares the signature peer `peer_rank` published at `published` (read after acquiring the flag
// or signal that followed it) with this call's. On a difference, reports kPeerMismatch naming the
// first field that differs, its value here and at the peer (first failure wins), and returns false.
// `peer_domain`: the peer's NVLink domain where the ranks span several (-1: one domain).
__device__ __forceinline__ bool signature_matches(const CallSignature* published, const CallSignature& here,
                                                  const DomainView& v, OpId op, int peer_rank,
                                                  int peer_domain = -1) {
  CallSignature peer;
  const auto* from = reinterpret_cast<const volatile std::uint64_t*>(published);
  auto* to = reinterpret_cast<std::uint64_t*>(&peer);
#pragma unroll
  for (int w = 0; w < static_cast<int>(sizeof(CallSignature) / sizeof(std::uint64_t)); ++w) to[w] = from[w];
  const int field = first_difference(here, peer);
  if (field < 0) return true;
  report_failure(v.status, StatusCode::kPeerMismatch, op, CounterId::kNone, v.rank, peer_rank, here.field[field],
                 peer.field[field], peer_domain, field);
  return false;
}

}  // namespace epcomm
