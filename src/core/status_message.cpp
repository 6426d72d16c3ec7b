#include "core/status_message.hpp"

#include "core/call_signature.hpp"
#include "core/check.hpp"

namespace epcomm {

const char* to_string(OpId op) noexcept {
  switch (op) {
    case OpId::kNone:
      return "unknown operation";
    case OpId::kBarrier:
      return "barrier";
    case OpId::kLayout:
      return "get_dispatch_layout";
    case OpId::kNotify:
      return "dispatch's count exchange (notify)";
    case OpId::kDispatch:
      return "dispatch";
    case OpId::kCombine:
      return "combine";
    case OpId::kLlDispatch:
      return "low-latency dispatch";
    case OpId::kLlCombine:
      return "low-latency combine";
  }
  return "unknown operation";
}

const char* to_string(CounterId counter) noexcept {
  switch (counter) {
    case CounterId::kNone:
      return "none";
    case CounterId::kBarrierSignal:
      return "barrier signal";
    case CounterId::kCountsReady:
      return "counts ready";
    case CounterId::kRowsArrived:
      return "rows arrived";
    case CounterId::kSlotFree:
      return "slot free";
    case CounterId::kWeightsReady:
      return "combine weights ready";
    case CounterId::kRowsStaged:
      return "rows staged";
    case CounterId::kMdCountRecord:
      return "count record of another domain";
    case CounterId::kMdSlot:
      return "ring slot from another domain";
    case CounterId::kMdCredits:
      return "ring credits from another domain";
  }
  return "unknown counter";
}

Error status_error(const DeviceStatus& s, std::uint64_t timeout_ms, const char* file, int line) {
  const auto op = static_cast<OpId>(s.op);
  switch (static_cast<StatusCode>(s.code)) {
    case StatusCode::kTimeout:
      return Error(ErrorCategory::kTimeout,
                   detail::concat("rank ", s.rank, ": ", to_string(op), " timed out after ", timeout_ms,
                                  " ms waiting for rank ", s.peer,
                                  s.peer_domain > 0 ? detail::concat(" of domain ", s.peer_domain - 1) : "",
                                  " (counter '", to_string(static_cast<CounterId>(s.counter)), "': expected ",
                                  s.expected, ", observed ", s.observed, ")"),
                   file, line);
    case StatusCode::kInvalidExpert:
      return Error(
          ErrorCategory::kInvalidArgument,
          detail::concat("topk_idx: rank ", s.rank, ", token ", s.observed, " names expert ", s.expected,
                         ", outside [-1, num_experts); detected by ", to_string(op), ", which skipped it"),
          file, line);
    case StatusCode::kRegionTooSmall:
      // Low-latency dispatch: a source owns T rows of each expert, so only a token naming one expert
      // in several slots overflows them; the kernel drops the extra selections and completes.
      if (op == OpId::kLlDispatch)
        return Error(ErrorCategory::kInvalidArgument,
                     detail::concat("topk_idx: rank ", s.rank, ": ", to_string(op), " would receive ",
                                    s.observed, " rows on rank ", s.peer, ", but only ", s.expected,
                                    " fit (a token names one expert in more than one slot); the extra "
                                    "selections were dropped"),
                     file, line);
      return Error(ErrorCategory::kInvalidArgument,
                   detail::concat("num_nvl_bytes / num_worst_tokens: rank ", s.rank, ": ", to_string(op),
                                  " would receive ", s.observed, " rows on rank ", s.peer, ", but only ",
                                  s.expected, " fit; nothing was sent"),
                   file, line);
    case StatusCode::kPeerMismatch: {
      // Category kInvalidArgument: the ranks were given calls that do not match (a caller's error).
      const auto field = static_cast<SigField>(s.detail);
      if (field == SigField::kOp && s.observed == kSigOpStopped)
        return Error(
            ErrorCategory::kInvalidArgument,
            detail::concat("peer mismatch: rank ", s.rank, ": ", to_string(op), ": rank ", s.peer,
                           " stopped its count exchange: a rank of another NVLink domain made a "
                           "different call from it (that rank's error names what differs); nothing was "
                           "received from it"),
            file, line);
      return Error(
          ErrorCategory::kInvalidArgument,
          detail::concat("peer mismatch: rank ", s.rank, ": ", to_string(op), ": rank ", s.peer,
                         s.peer_domain > 0 ? detail::concat(" of domain ", s.peer_domain - 1) : "",
                         " made a different call: ", to_string(field), " is ",
                         describe_signature_value(field, static_cast<std::int32_t>(s.expected)), " here but ",
                         describe_signature_value(field, static_cast<std::int32_t>(s.observed)), " at rank ",
                         s.peer, "; every rank must pass the same ", to_string(field),
                         "; nothing was received from it"),
          file, line);
    }
    case StatusCode::kOk:
      break;
  }
  return Error(ErrorCategory::kInternal, detail::concat("device status holds unknown code ", s.code), file,
               line);
}

}  // namespace epcomm
