// The status word kernels leave for the host when something goes wrong on the device: a peer
// that never answered, or a malformed input only visible to the device (an expert index out of
// range). It lives in pinned host memory mapped into the device, so the host reads it without a
// copy; the first failure wins (later ones are dropped).
#pragma once

#include <cstdint>

namespace epcomm {

enum class StatusCode : std::int32_t {
  kOk = 0,
  kTimeout = 1,         // a bounded wait on a peer ran out
  kInvalidExpert = 2,   // topk_idx held a value outside [-1, num_experts)
  kRegionTooSmall = 3,  // received rows would not fit a region or the outputs (worst-case mode)
  kPeerMismatch = 4,    // a peer's call signature differs (core/call_signature.hpp): detail names the field
};

// What an operation was doing; named in the error message.
enum class OpId : std::int32_t {
  kNone = 0,
  kBarrier,
  kLayout,
  kNotify,
  kDispatch,
  kCombine,
  kLlDispatch,  // low-latency dispatch
  kLlCombine,   // low-latency combine
};

// Which counter a wait polled; named in the error message.
enum class CounterId : std::int32_t {
  kNone = 0,
  kBarrierSignal,  // domain barrier slot written by the peer
  kCountsReady,    // the peer published its per-destination counts
  kRowsArrived,    // rows the peer has written into this rank's receive region
  kSlotFree,       // the peer finished reading a region this rank wants to reuse
  kWeightsReady,   // the peer wrote its tokens' combine weights into this rank
  kRowsStaged,     // rows the peer has staged in its own region for this rank to read
  // Multi-domain mode (docs/multi_domain.md, "Bounded waits"):
  kMdCountRecord,  // the count record of the peer in another domain (symmetric count flag)
  kMdSlot,         // slot k of a stream from the peer in another domain (symmetric slot flag)
  kMdCredits,      // ring slots the peer in another domain has freed (credits of a stream)
};

struct DeviceStatus {
  std::int32_t code;     // StatusCode; 0 while nothing failed
  std::int32_t op;       // OpId
  std::int32_t counter;  // CounterId
  std::int32_t rank;     // the rank that observed the failure
  std::int32_t peer;     // the peer waited on (or -1)
  std::int32_t peer_domain;  // the peer's NVLink domain + 1 when the waiter named it (multi-domain); else 0
  std::int32_t detail;       // kPeerMismatch: the SigField that differs; otherwise 0
  std::int32_t reserved;     // keeps expected and observed 8-byte aligned
  std::int64_t expected;  // the value waited for (or the offending index; kPeerMismatch: the value here)
  std::int64_t observed;  // the value last seen (or the token index; kPeerMismatch: the peer's value)
};

const char* to_string(OpId op) noexcept;
const char* to_string(CounterId counter) noexcept;

}  // namespace epcomm
