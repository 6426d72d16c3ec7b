// A call's signature: the few values every rank of a collective call must agree on (the operation,
// the shapes and the launch configuration), published to the peers beside the counts each call
// already exchanges. A rank that reads a peer's signature and finds a field that differs reports
// it (StatusCode::kPeerMismatch: which field, its value here and at the peer) instead of reading
// the peer's rows by the wrong shape, or waiting on signals the peer will never give.
// Plain data, host- and device-callable (the kernels compare, the host formats the message).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#if defined(__CUDACC__)
#define EPCOMM_SIG_HD __host__ __device__
#else
#define EPCOMM_SIG_HD
#endif

namespace epcomm {

// The fields, in the order they are stored.
enum class SigField : std::int32_t {
  kOp = 0,      // OpId of the call
  kHidden,      // channels per row (high-throughput: the row's bytes, which also tell the dtype)
  kNumTopk,     // top-k slots per token (0: none given)
  kNumBlocks,   // thread blocks (high-throughput: the channels, from Config::num_sms)
  kMaxTokens,   // low-latency: T; high-throughput: num_worst_tokens (0 unless worst-case mode)
  kNumExperts,  // E (global)
  kFlags,       // SigFlag bits
  kCount
};
inline constexpr int kSigFields = static_cast<int>(SigField::kCount);

enum SigFlag : std::int32_t {
  kSigFp8 = 1,          // FP8 rows
  kSigRoundScale = 2,   // low-latency: scales rounded to powers of two
  kSigUe8m0 = 4,        // low-latency: UE8M0 scales
  kSigCached = 8,       // dispatch reusing a handle's routing
  kSigPull = 16,        // combine (high-throughput, low-latency): pulled by the rows' owners
  kSigCopyEngine = 32,  // high-throughput combine: rows moved by the copy engine
};

// 8 int32 words (one spare, zero): the record a rank writes into each peer, 4 aligned 64-bit words
// (call_signature.cuh copies it as such, so it is 8-byte aligned wherever it lives).
struct alignas(8) CallSignature {
  std::int32_t field[8] = {};

  EPCOMM_SIG_HD void set(SigField f, std::int64_t value) {
    field[static_cast<int>(f)] = static_cast<std::int32_t>(value);
  }
  EPCOMM_SIG_HD std::int32_t get(SigField f) const { return field[static_cast<int>(f)]; }
};
static_assert(std::is_trivially_copyable_v<CallSignature> && sizeof(CallSignature) == 32);
static_assert(kSigFields <= 8);

// What a call publishes: every field in its place (the spare word stays zero).
struct SignatureFields {
  std::int32_t op = 0;  // OpId
  std::int64_t hidden = 0;
  int num_topk = 0;
  int num_blocks = 0;
  std::int64_t max_tokens = 0;
  int num_experts = 0;
  std::int32_t flags = 0;  // SigFlag bits
};
EPCOMM_SIG_HD inline CallSignature make_signature(const SignatureFields& f) {
  CallSignature s;
  s.set(SigField::kOp, f.op);
  s.set(SigField::kHidden, f.hidden);
  s.set(SigField::kNumTopk, f.num_topk);
  s.set(SigField::kNumBlocks, f.num_blocks);
  s.set(SigField::kMaxTokens, f.max_tokens);
  s.set(SigField::kNumExperts, f.num_experts);
  s.set(SigField::kFlags, f.flags);
  return s;
}

// The operation field of a rank that stopped its count exchange because a peer in another NVLink
// domain made a different call: it tells its own domain's ranks so at once (they would otherwise
// wait for its records until their timeout). Its own error names the call that differed.
inline constexpr std::int32_t kSigOpStopped = -1;

// The first field where `here` and `peer` differ, or -1 when they agree. The operation comes first,
// then whether the call is cached (kSigCached: a cached call leaves the fields it does not use at
// zero, so the difference that matters is that one), then the fields in order.
EPCOMM_SIG_HD inline int first_difference(const CallSignature& here, const CallSignature& peer) {
  constexpr int kOp = static_cast<int>(SigField::kOp), kFlagsField = static_cast<int>(SigField::kFlags);
  if (here.field[kOp] != peer.field[kOp]) return kOp;
  if (((here.field[kFlagsField] ^ peer.field[kFlagsField]) & kSigCached) != 0) return kFlagsField;
  for (int f = 0; f < kSigFields; ++f)
    if (here.field[f] != peer.field[f]) return f;
  return -1;
}

// Host only: the field's name as a caller knows it ("hidden", "num_topk", ...).
const char* to_string(SigField field) noexcept;
// Host only: a field's value in words (an operation's name, the flags spelled out, or the number).
std::string describe_signature_value(SigField field, std::int32_t value);

}  // namespace epcomm
