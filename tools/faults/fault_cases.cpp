#include "faults/fault_cases.hpp"

#include <sstream>

#include "core/call_signature.hpp"
#include "core/check.hpp"
#include "core/status_message.hpp"

namespace epcomm::faults {

namespace {

constexpr Phase kPhases[] = {Phase::kLayout,    Phase::kNotify,         Phase::kHtTransfer,
                             Phase::kHtCombine, Phase::kCachedDispatch, Phase::kLlDispatch,
                             Phase::kLlCombine, Phase::kLlCombineZc,    Phase::kLlSplit,
                             Phase::kBarrier,   Phase::kCreate,         Phase::kDestroy};
constexpr Field kFields[] = {Field::kHidden, Field::kTopk, Field::kNumSms, Field::kTokens};
// Phases where a survivor with mask_on_timeout should carry on after a killed peer: every call
// that waits on a peer in the kernels (the mask is read there).
constexpr Phase kMaskPhases[] = {Phase::kNotify,    Phase::kHtCombine,   Phase::kLlDispatch,
                                 Phase::kLlCombine, Phase::kLlCombineZc, Phase::kBarrier};

// The names the survivor's error may give its operation: the call that first waits on the peer
// after a fault at `phase`, as the library spells them (core/status_message.cpp; the bootstrap's own).
std::vector<std::string> op_words(Phase phase) {
  switch (phase) {
    case Phase::kLayout:  // the count exchange is named as part of dispatch, as is a mismatch found there
    case Phase::kNotify:
      return {to_string(OpId::kDispatch)};
    case Phase::kHtTransfer:  // the peer's rows may all have arrived before it died
      return {to_string(OpId::kDispatch), to_string(OpId::kCombine)};
    case Phase::kHtCombine:
      return {to_string(OpId::kCombine)};
    case Phase::kCachedDispatch:
      return {to_string(OpId::kDispatch)};
    case Phase::kLlDispatch:
      return {to_string(OpId::kLlDispatch)};
    case Phase::kLlCombine:
    case Phase::kLlCombineZc:
      return {to_string(OpId::kLlCombine)};
    case Phase::kLlSplit:  // the peer sent before it failed: the survivor's receive may complete
      return {to_string(OpId::kLlDispatch), to_string(OpId::kLlCombine)};
    case Phase::kBarrier:
      return {to_string(OpId::kBarrier)};
    case Phase::kCreate:  // the bootstrap's exchanges, or the first call when they passed
      return {"all_gather", "connect", "Buffer", to_string(OpId::kLlDispatch)};
    case Phase::kDestroy:
      return {};
  }
  return {};
}

// The survivor waits on a peer that never comes: a timeout naming it and the awaited counter.
Expectation peer_gone(Phase phase) {
  Expectation e;
  if (phase == Phase::kDestroy) {
    e.outcome = Outcome::kReturnsInTime;
    e.names_peer = false;
    return e;
  }
  e.op_words = op_words(phase);
  if (phase == Phase::kCreate) {
    e.categories = {ErrorCategory::kTimeout, ErrorCategory::kBootstrap};
    e.awaited_words = {"waiting for", "never arrived", "closed its connection"};  // the bootstrap's words
  } else {
    e.categories = {ErrorCategory::kTimeout};
    e.awaited_words = {"counter '"};
  }
  return e;
}

// The peer makes another call: found by the signature exchange (the "operation" differs) or, where
// no signature is exchanged, as a timeout on the awaited counter.
Expectation other_operation(Phase phase) {
  Expectation e = peer_gone(phase);
  if (e.outcome != Outcome::kError) return e;
  e.categories.push_back(ErrorCategory::kInvalidArgument);
  e.awaited_words.push_back(std::string(to_string(SigField::kOp)) + " is");
  if (phase == Phase::kCreate) e.awaited_words.push_back("differ");
  return e;
}

Expectation skipped(std::string reason) {
  Expectation e;
  e.outcome = Outcome::kSkipped;
  e.skip_reason = std::move(reason);
  return e;
}

// Why a mismatch of `field` cannot be made at `phase`; empty where it can.
std::string mismatch_skip_reason(Phase phase, Field field) {
  switch (phase) {
    case Phase::kLayout:
      return "get_dispatch_layout is local: a changed shape reaches the peer only through dispatch (notify "
             "cases)";
    case Phase::kHtTransfer:
      return "the call's values are exchanged with the counts, before the transfer (notify cases)";
    case Phase::kLlCombine:
    case Phase::kLlCombineZc:
      return "combine's shapes come from the dispatch's handle and are checked locally";
    case Phase::kLlSplit:
      return "a split dispatch exchanges the same signature as ll_dispatch (those cases)";
    case Phase::kBarrier:
    case Phase::kDestroy:
      return "this call takes no shape or config";
    case Phase::kNotify:
      return {};
    case Phase::kHtCombine:
    case Phase::kCachedDispatch:
      if (field == Field::kTopk || field == Field::kTokens)
        return "k and T are fixed by the dispatch's handle";
      if (phase == Phase::kCachedDispatch && field == Field::kNumSms)
        return "a cached dispatch keeps the handle's sender blocks: fewer is refused on the calling rank "
               "before launch (its peers time out naming it), more are left idle";
      return {};
    case Phase::kLlDispatch:
      if (field == Field::kTopk) return {};
      if (field == Field::kNumSms) break;
      return "fixed when the low-latency Buffer is made (create cases); fewer tokens per call is legal";
    case Phase::kCreate:
      if (field != Field::kNumSms) return {};
      break;
  }
  return "low-latency calls take no num_sms: every rank launches the smallest grid any rank asks for "
         "(LowLatencyOptions::num_blocks), by design";
}

// The signature field a mismatch of `field` differs in; its name is what the report says.
SigField signature_field(Field field) {
  switch (field) {
    case Field::kHidden:
      return SigField::kHidden;
    case Field::kTopk:
      return SigField::kNumTopk;
    case Field::kNumSms:
      return SigField::kNumBlocks;
    case Field::kTokens:
      return SigField::kMaxTokens;
    case Field::kNone:
      break;
  }
  return SigField::kOp;
}

// The LowLatencyOptions field a mismatch of `field` at creation differs in.
const char* ll_option_name(Field field) {
  switch (field) {
    case Field::kHidden:
      return "hidden";
    case Field::kTopk:
      return "max_topk";
    case Field::kTokens:
      return "max_tokens_per_rank";
    case Field::kNumSms:
    case Field::kNone:
      break;
  }
  return "?";
}

Expectation mismatch(Phase phase, Field field) {
  std::string reason = mismatch_skip_reason(phase, field);
  if (!reason.empty()) return skipped(std::move(reason));
  Expectation e;
  e.categories = {ErrorCategory::kInvalidArgument};
  e.op_words = phase == Phase::kCreate ? op_words(Phase::kLlDispatch) : op_words(phase);
  if (phase == Phase::kCreate) e.op_words.push_back("Buffer");
  e.awaited_words = {std::string(phase == Phase::kCreate ? ll_option_name(field) : to_string(signature_field(field))) +
                     " is"};
  return e;
}

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  for (Phase p : kPhases) {
    cases.push_back({p, Fault::kKill, Field::kNone, false, peer_gone(p)});
    cases.push_back({p, Fault::kStall, Field::kNone, false, peer_gone(p)});
    cases.push_back({p, Fault::kOtherOp, Field::kNone, false, other_operation(p)});
    for (Field f : kFields) cases.push_back({p, Fault::kMismatch, f, false, mismatch(p, f)});
  }
  for (Phase p : kMaskPhases) {
    Case c{p, Fault::kKill, Field::kNone, true, peer_gone(p)};
    c.expect.survivor_carries_on = true;
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace

const char* to_string(Phase phase) noexcept {
  switch (phase) {
    case Phase::kLayout:
      return "layout";
    case Phase::kNotify:
      return "notify";
    case Phase::kHtTransfer:
      return "ht_transfer";
    case Phase::kHtCombine:
      return "ht_combine";
    case Phase::kCachedDispatch:
      return "cached_dispatch";
    case Phase::kLlDispatch:
      return "ll_dispatch";
    case Phase::kLlCombine:
      return "ll_combine";
    case Phase::kLlCombineZc:
      return "ll_combine_zc";
    case Phase::kLlSplit:
      return "ll_split";
    case Phase::kBarrier:
      return "barrier";
    case Phase::kCreate:
      return "create";
    case Phase::kDestroy:
      return "destroy";
  }
  return "?";
}

const char* to_string(Fault fault) noexcept {
  switch (fault) {
    case Fault::kKill:
      return "kill";
    case Fault::kStall:
      return "stall";
    case Fault::kOtherOp:
      return "other_op";
    case Fault::kMismatch:
      return "mismatch";
  }
  return "?";
}

const char* to_string(Field field) noexcept {
  switch (field) {
    case Field::kNone:
      return "none";
    case Field::kHidden:
      return "hidden";
    case Field::kTopk:
      return "topk";
    case Field::kNumSms:
      return "num_sms";
    case Field::kTokens:
      return "tokens";
  }
  return "?";
}

const char* to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::kError:
      return "error";
    case Outcome::kReturnsInTime:
      return "returns";
    case Outcome::kSkipped:
      return "skipped";
  }
  return "?";
}

bool is_low_latency(Phase phase) noexcept {
  return phase == Phase::kLlDispatch || phase == Phase::kLlCombine || phase == Phase::kLlCombineZc ||
         phase == Phase::kLlSplit || phase == Phase::kCreate;
}

std::string case_name(const Case& c) {
  std::string name = std::string(to_string(c.phase)) + "." + to_string(c.fault);
  if (c.fault == Fault::kMismatch) name += std::string("_") + to_string(c.field);
  if (c.mask_on_timeout) name += "+mask";
  return name;
}

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = make_cases();
  return cases;
}

const Case& find_case(const std::string& name) {
  for (const Case& c : all_cases())
    if (case_name(c) == name) return c;
  EPCOMM_THROW(ErrorCategory::kInvalidArgument, "--case: no fault case is named '", name,
               "' (epcomm-faults --list names them)");
}

Case for_two_domains(Case c) {
  if (c.expect.outcome == Outcome::kSkipped) return c;  // already, for its own reason
  std::string reason;
  if (c.phase == Phase::kBarrier)
    reason = "Buffer::barrier synchronises one NVLink domain: with one rank per domain the peer is outside it";
  else if (c.mask_on_timeout && !is_low_latency(c.phase))
    reason = "a multi-domain high-throughput Buffer refuses mask_on_timeout: its kernels between domains "
             "read no rank mask";
  else if (c.phase == Phase::kHtCombine && c.field == Field::kNumSms)
    reason = "a multi-domain combine runs the dispatch's channels (the handle's): it reads no num_sms";
  if (!reason.empty()) c.expect = skipped(std::move(reason));
  return c;
}

std::vector<Case> select_cases(const std::string& filter, bool two_domains) {
  std::vector<std::string> words;
  std::stringstream in(filter);
  for (std::string w; std::getline(in, w, ',');)
    if (!w.empty()) words.push_back(w);
  std::vector<Case> out;
  for (const Case& c : all_cases()) {
    const std::string name = case_name(c);
    bool keep = words.empty();
    for (const auto& w : words) keep = keep || name.find(w) != std::string::npos;
    if (keep) out.push_back(two_domains ? for_two_domains(c) : c);
  }
  return out;
}

}  // namespace epcomm::faults
