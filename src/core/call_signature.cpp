#include "core/call_signature.hpp"

#include "core/check.hpp"
#include "core/device_status.hpp"

namespace epcomm {

const char* to_string(SigField field) noexcept {
  switch (field) {
    case SigField::kOp:
      return "operation";
    case SigField::kHidden:
      return "hidden";
    case SigField::kNumTopk:
      return "num_topk";
    case SigField::kNumBlocks:
      return "num_sms (blocks)";
    case SigField::kMaxTokens:
      return "num_max_dispatch_tokens_per_rank / num_worst_tokens";
    case SigField::kNumExperts:
      return "num_experts";
    case SigField::kFlags:
      return "flags";
    case SigField::kCount:
      break;
  }
  return "unknown field";
}

std::string describe_signature_value(SigField field, std::int32_t value) {
  if (field == SigField::kOp)
    return value == kSigOpStopped ? "none (it stopped: a rank of another NVLink domain made a different call)"
                                  : to_string(static_cast<OpId>(value));
  if (field != SigField::kFlags) return detail::concat(value);
  // Spelled out, so "use_fp8=1 at rank 0, 0 at rank 1" reads without a bit table.
  return detail::concat(
      "use_fp8=", (value & kSigFp8) ? 1 : 0, " round_scale=", (value & kSigRoundScale) ? 1 : 0,
      " use_ue8m0=", (value & kSigUe8m0) ? 1 : 0, " cached=", (value & kSigCached) ? 1 : 0,
      " pull=", (value & kSigPull) ? 1 : 0, " copy_engine=", (value & kSigCopyEngine) ? 1 : 0);
}

}  // namespace epcomm
