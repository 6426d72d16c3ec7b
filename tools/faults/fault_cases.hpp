// The fault matrix of issue 22 as data: every phase of a call sequence between two ranks, every fault
// the peer (rank 1) can commit there, and what the survivor (rank 0) must then observe. Host code
// only; tests/cpu/test_faults_cases.cpp checks the table, faults_main.cpp runs it on a GPU.
#pragma once

#include <string>
#include <vector>

#include "epcomm/error.hpp"

namespace epcomm::faults {

// Where the peer's fault happens. The survivor runs its sequence from this phase on (HT: layout,
// dispatch, combine, cached dispatch, barrier; LL: dispatch, combine) and records the first error.
enum class Phase {
  kLayout,          // get_dispatch_layout (local: the fault shows at the next collective call)
  kNotify,          // HT dispatch's count exchange: the peer never reaches it
  kHtTransfer,      // HT dispatch mid-transfer: the peer's dispatch kernel was just launched
  kHtCombine,       // HT combine
  kCachedDispatch,  // HT dispatch with the handle
  kLlDispatch,      // low-latency dispatch
  kLlCombine,       // low-latency combine
  kLlCombineZc,     // low-latency combine with a zero-copy y (pulled by the owners with CUDA IPC)
  kLlSplit,         // between a split LL dispatch's send and its receive (return_recv_hook)
  kBarrier,         // Buffer::barrier
  kCreate,          // the Buffer's collective constructor
  kDestroy,         // the Buffer's destructor
};

enum class Fault {
  kKill,      // SIGKILL, no cleanup
  kStall,     // sleeps past the timeout, then exits without another call
  kOtherOp,   // calls a different operation at that phase
  kMismatch,  // calls the same operation with one shape or config value changed (Case::field)
};

// The value a mismatch changes (SigField names in core/call_signature.cpp).
enum class Field { kNone, kHidden, kTopk, kNumSms, kTokens };

enum class Outcome {
  kError,          // the survivor's call throws an epcomm::Error within the bound
  kReturnsInTime,  // the survivor's call returns (destructors never throw) within the bound
  kSkipped,        // this build cannot make the case; Expectation::skip_reason says why
};

struct Expectation {
  Outcome outcome = Outcome::kError;
  std::vector<ErrorCategory> categories;   // any of these (kError only)
  std::vector<std::string> op_words;       // the message names the operation with one of these
  std::vector<std::string> awaited_words;  // ... and what was awaited or what differs, one of these
  bool names_peer = true;                  // ... and the peer ("rank 1")
  bool survivor_carries_on = false;        // with mask_on_timeout: the next call succeeds
  std::string skip_reason;
};

struct Case {
  Phase phase = Phase::kLayout;
  Fault fault = Fault::kKill;
  Field field = Field::kNone;
  bool mask_on_timeout = false;  // the survivor's Buffer masks a peer that timed out
  Expectation expect;
};

const char* to_string(Phase phase) noexcept;
const char* to_string(Fault fault) noexcept;
const char* to_string(Field field) noexcept;
const char* to_string(Outcome outcome) noexcept;
// True for the phases that use a low-latency Buffer.
bool is_low_latency(Phase phase) noexcept;

// "notify.kill", "ht_combine.mismatch_hidden", "ll_dispatch.kill+mask": unique, no spaces.
std::string case_name(const Case& c);
// Every case, in a fixed order; skipped ones included (with their reason).
const std::vector<Case>& all_cases();
// The case named `name`; throws epcomm::Error(kInvalidArgument) naming it when none is.
const Case& find_case(const std::string& name);
// The cases whose names contain any of the comma-separated `filter` words (empty: all); with
// `two_domains`, as they read for two ranks in two NVLink domains (for_two_domains).
std::vector<Case> select_cases(const std::string& filter, bool two_domains = false);
// `c` for two ranks in two NVLink domains (--ranks-per-domain 1, every phase on its multi-domain
// path): the same expectation, but skipped where the multi-domain Buffer differs by design (its
// barrier spans one domain, its high-throughput kernels read no rank mask, its combine no num_sms).
Case for_two_domains(Case c);

}  // namespace epcomm::faults
