// What the survivor of one fault case observed, the verdict against the case's expectation, and the
// report (JSON and a printed table). The survivor hands its observation to the driver as "key=value"
// lines (format_observation / parse_observation); the driver adds how the processes ended. Host code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "faults/fault_cases.hpp"

namespace epcomm::faults {

struct Observation {
  // From the survivor (rank 0).
  bool recorded = false;      // the survivor wrote its observation
  bool got_error = false;     // its call threw an epcomm::Error
  std::string category;       // to_string(ErrorCategory) of it
  std::string message;        // Error::message()
  std::int64_t event_ns = 0;  // CLOCK_MONOTONIC when the call threw (or returned, kReturnsInTime)
  bool context_ok = false;    // a small kernel and a synchronisation worked after it
  std::string context_error;
  bool peer_masked = false;  // masked_ranks()[1] after the error (mask cases)
  bool carried_on = false;   // the next call succeeded (mask cases)
  std::string carry_error;
  // From the peer (rank 1): CLOCK_MONOTONIC when it committed the fault; 0: it never did.
  std::int64_t fault_ns = 0;
  std::string peer_error;  // what rank 1's own call threw (other_op, mismatch), if it threw
  // From the driver's watchdog.
  bool survivor_exited = false;  // ended on its own within the case's bound
  std::string survivor_ending;   // "exited with code 0", "stopped by the watchdog"
  std::string peer_ending;
};

struct Verdict {
  std::string status;                // "pass", "fail" or "skipped"
  std::vector<std::string> reasons;  // why it failed (or the skip reason)
  double ms_to_event = -1;           // fault -> the survivor's error (or return); < 0: unknown
  bool names_peer = false, names_op = false, names_awaited = false;
};

std::string format_observation(const Observation& o);
// The inverse of format_observation for the survivor's fields; unknown keys are ignored.
Observation parse_observation(const std::string& text);

// `bound_ms`: the longest a fault may take to reach the survivor (the timeout plus a margin).
Verdict judge(const Case& c, const Observation& o, double bound_ms);

struct CaseResult {
  Case c;
  Observation observed;
  Verdict verdict;
};

struct ReportHeader {
  std::int64_t timeout_ms = 0;
  double bound_ms = 0;
  int num_ranks = 2;
  std::string device;        // the GPU's name, or "" when unknown
  int ranks_per_domain = 0;  // > 0: the ranks formed NVLink domains of this many (multi-domain cases)
};

// The whole run as one JSON document: header, every case (expected, observed, verdict), summary.
std::string report_json(const ReportHeader& header, const std::vector<CaseResult>& results);
// One line per case: name, status, category, ms to the error, what the message names, notes.
std::string report_table(const std::vector<CaseResult>& results);
// 0 when no case failed, else 1.
int report_exit_code(const std::vector<CaseResult>& results);

}  // namespace epcomm::faults
