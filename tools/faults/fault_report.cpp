#include "faults/fault_report.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "faults/json_writer.hpp"
#include "faults/message_checks.hpp"

namespace epcomm::faults {

namespace {

constexpr int kPeer = 1;  // the rank that commits the fault

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

bool category_allowed(const Expectation& e, const std::string& category) {
  for (ErrorCategory c : e.categories)
    if (category == to_string(c)) return true;
  return false;
}

// The checks of an expected error: category, message contents.
void judge_error(const Expectation& e, const Observation& o, Verdict& v) {
  if (!o.got_error) {
    v.reasons.push_back("no epcomm::Error");
    return;
  }
  if (!category_allowed(e, o.category)) v.reasons.push_back("category " + o.category);
  const MessageFacts f = message_facts(o.message, kPeer, e.op_words, e.awaited_words);
  v.names_peer = f.names_peer;
  v.names_op = f.names_op;
  v.names_awaited = f.names_awaited;
  if (e.names_peer && !f.names_peer) v.reasons.push_back("message does not name rank 1");
  if (!e.op_words.empty() && !f.names_op) v.reasons.push_back("message does not name the operation");
  if (!e.awaited_words.empty() && !f.names_awaited)
    v.reasons.push_back("message does not say what was awaited or what differs");
}

}  // namespace

std::string format_observation(const Observation& o) {
  std::ostringstream out;
  out << "recorded=1\n"
      << "got_error=" << o.got_error << "\n"
      << "category=" << one_line(o.category) << "\n"
      << "message=" << one_line(o.message) << "\n"
      << "event_ns=" << o.event_ns << "\n"
      << "context_ok=" << o.context_ok << "\n"
      << "context_error=" << one_line(o.context_error) << "\n"
      << "peer_masked=" << o.peer_masked << "\n"
      << "carried_on=" << o.carried_on << "\n"
      << "carry_error=" << one_line(o.carry_error) << "\n";
  return out.str();
}

Observation parse_observation(const std::string& text) {
  Observation o;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "recorded")
      o.recorded = value == "1";
    else if (key == "got_error")
      o.got_error = value == "1";
    else if (key == "category")
      o.category = value;
    else if (key == "message")
      o.message = value;
    else if (key == "event_ns")
      o.event_ns = std::strtoll(value.c_str(), nullptr, 10);  // garbage: 0
    else if (key == "context_ok")
      o.context_ok = value == "1";
    else if (key == "context_error")
      o.context_error = value;
    else if (key == "peer_masked")
      o.peer_masked = value == "1";
    else if (key == "carried_on")
      o.carried_on = value == "1";
    else if (key == "carry_error")
      o.carry_error = value;
  }
  return o;
}

Verdict judge(const Case& c, const Observation& o, double bound_ms) {
  Verdict v;
  const Expectation& e = c.expect;
  if (e.outcome == Outcome::kSkipped) {
    v.status = "skipped";
    v.reasons.push_back(e.skip_reason);
    return v;
  }
  if (!o.survivor_exited) v.reasons.push_back("survivor did not end on its own: " + o.survivor_ending);
  if (!o.recorded) v.reasons.push_back("survivor recorded nothing (" + o.survivor_ending + ")");
  if (o.recorded) {
    if (e.outcome == Outcome::kError)
      judge_error(e, o, v);
    else if (o.got_error)
      v.reasons.push_back("threw: " + o.message);
    if (o.fault_ns <= 0) {
      v.reasons.push_back("the peer recorded no fault time");
    } else {
      v.ms_to_event = static_cast<double>(o.event_ns - o.fault_ns) / 1e6;
      if (v.ms_to_event > bound_ms) v.reasons.push_back("took longer than the bound");
    }
    if (!o.context_ok) v.reasons.push_back("CUDA context unusable afterwards: " + o.context_error);
    if (e.survivor_carries_on && !o.peer_masked) v.reasons.push_back("peer not masked after the timeout");
    if (e.survivor_carries_on && !o.carried_on) v.reasons.push_back("next call failed: " + o.carry_error);
  }
  v.status = v.reasons.empty() ? "pass" : "fail";
  return v;
}

std::string report_json(const ReportHeader& header, const std::vector<CaseResult>& results) {
  JsonWriter w;
  w.begin_object().field("tool", "epcomm-faults").field("timeout_ms", header.timeout_ms);
  w.field("bound_ms", header.bound_ms).field("num_ranks", header.num_ranks);
  w.field("ranks_per_domain", header.ranks_per_domain).field("device", header.device);
  int passed = 0, failed = 0, skipped = 0;
  w.begin_array("cases");
  for (const CaseResult& r : results) {
    const Expectation& e = r.c.expect;
    const Observation& o = r.observed;
    passed += r.verdict.status == "pass";
    failed += r.verdict.status == "fail";
    skipped += r.verdict.status == "skipped";
    w.begin_object().field("name", case_name(r.c)).field("phase", to_string(r.c.phase));
    w.field("fault", to_string(r.c.fault)).field("field", to_string(r.c.field));
    w.field("mask_on_timeout", r.c.mask_on_timeout);
    w.begin_object("expected").field("outcome", to_string(e.outcome));
    std::vector<std::string> cats;
    for (ErrorCategory c : e.categories) cats.emplace_back(to_string(c));
    w.string_array("categories", cats).string_array("op_words", e.op_words);
    w.string_array("awaited_words", e.awaited_words).field("carries_on", e.survivor_carries_on).end_object();
    w.begin_object("observed").field("recorded", o.recorded).field("got_error", o.got_error);
    w.field("category", o.category).field("message", o.message).field("context_ok", o.context_ok);
    w.field("peer_masked", o.peer_masked).field("carried_on", o.carried_on);
    w.field("survivor_exited", o.survivor_exited).field("survivor_ending", o.survivor_ending);
    w.field("peer_ending", o.peer_ending).field("peer_error", o.peer_error).end_object();
    w.field("status", r.verdict.status).string_array("reasons", r.verdict.reasons);
    w.field("ms_to_error", r.verdict.ms_to_event).field("names_peer", r.verdict.names_peer);
    w.field("names_op", r.verdict.names_op).field("names_awaited", r.verdict.names_awaited).end_object();
  }
  w.end_array();
  w.begin_object("summary").field("cases", static_cast<int>(results.size())).field("tried", passed + failed);
  w.field("survived", passed).field("failed", failed).field("skipped", skipped).end_object();
  w.end_object();
  return w.text() + "\n";
}

std::string report_table(const std::vector<CaseResult>& results) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-32s %-7s %-17s %9s  %-4s %-2s %-7s %-3s %s\n", "case", "status",
                "category", "ms", "peer", "op", "awaited", "ctx", "notes");
  out += line;
  for (const CaseResult& r : results) {
    const Verdict& v = r.verdict;
    const bool ran = v.status != "skipped";
    std::string notes;
    for (const auto& reason : v.reasons) notes += (notes.empty() ? "" : "; ") + reason;
    if (v.status == "fail" && !r.observed.peer_error.empty())
      notes += "; the peer's call threw: " + r.observed.peer_error;
    std::snprintf(line, sizeof line, "%-32s %-7s %-17s %9.1f  %-4s %-2s %-7s %-3s %s\n",
                  case_name(r.c).c_str(), v.status.c_str(), ran ? r.observed.category.c_str() : "-",
                  v.ms_to_event, ran && v.names_peer ? "yes" : "-", ran && v.names_op ? "y" : "-",
                  ran && v.names_awaited ? "yes" : "-", ran && r.observed.context_ok ? "ok" : "-",
                  notes.c_str());
    out += line;
  }
  return out;
}

int report_exit_code(const std::vector<CaseResult>& results) {
  for (const CaseResult& r : results)
    if (r.verdict.status == "fail") return 1;
  return 0;
}

}  // namespace epcomm::faults
