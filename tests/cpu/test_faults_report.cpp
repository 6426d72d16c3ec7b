// The fault report (tools/faults/fault_report.cpp, json_writer.cpp, message_checks.cpp): what a
// message must name, the verdict of an observation against a case, the observation's hand-off
// format, and the JSON and table written from the results.
#include <gtest/gtest.h>

#include <string>

#include "faults/fault_cases.hpp"
#include "faults/fault_report.hpp"
#include "faults/json_writer.hpp"
#include "faults/message_checks.hpp"

namespace epcomm::faults {
namespace {

// The device's timeout report as core/status_message.cpp words it.
const std::string kTimeoutMessage =
    "rank 0: low-latency dispatch timed out after 3000 ms waiting for rank 1 (counter 'rows arrived': "
    "expected 1, observed 0)";
const std::string kMismatchMessage =
    "peer mismatch: rank 0: notify (count exchange): rank 1 made a different call: num_topk is 4 here but 2 "
    "at "
    "rank 1; every rank must pass the same num_topk; nothing was received from it";

TEST(FaultMessages, NamesRankAsAWholeNumber) {
  EXPECT_TRUE(names_rank(kTimeoutMessage, 1));
  EXPECT_TRUE(names_rank(kTimeoutMessage, 0));
  EXPECT_FALSE(names_rank(kTimeoutMessage, 2));
  EXPECT_FALSE(names_rank("waiting for rank 10", 1));
  EXPECT_FALSE(names_rank("waiting for rank 21", 1));
  EXPECT_TRUE(names_rank("never arrived: ranks 0, 1", 1));
  EXPECT_TRUE(names_rank("the blocks of ranks 2-3, 1", 1));
  EXPECT_FALSE(names_rank("1 rank is late", 1));
  EXPECT_FALSE(names_rank("", 1));
}

TEST(FaultMessages, FactsOfATimeoutAndAMismatch) {
  const MessageFacts t = message_facts(kTimeoutMessage, 1, {"low-latency dispatch"}, {"counter '"});
  EXPECT_TRUE(t.names_peer && t.names_op && t.names_awaited);
  const MessageFacts wrong_op = message_facts(kTimeoutMessage, 1, {"low-latency combine"}, {"counter '"});
  EXPECT_FALSE(wrong_op.names_op);
  const MessageFacts m = message_facts(kMismatchMessage, 1, {"notify (count exchange)"}, {"num_topk is"});
  EXPECT_TRUE(m.names_peer && m.names_op && m.names_awaited);
  EXPECT_FALSE(message_facts(kMismatchMessage, 1, {}, {"hidden is"}).names_awaited);
  EXPECT_FALSE(contains_any("anything", {}));
  EXPECT_FALSE(contains_any("anything", {""}));
}

Observation timeout_seen(double ms_after_fault) {
  Observation o;
  o.recorded = true;
  o.got_error = true;
  o.category = "timeout";
  o.message = kTimeoutMessage;
  o.fault_ns = 1'000'000'000;
  o.event_ns = o.fault_ns + static_cast<std::int64_t>(ms_after_fault * 1e6);
  o.context_ok = true;
  o.survivor_exited = true;
  o.survivor_ending = "exited with code 0";
  return o;
}

TEST(FaultVerdict, ATimelyNamedTimeoutPasses) {
  const Verdict v = judge(find_case("ll_dispatch.kill"), timeout_seen(3100), 5000);
  EXPECT_EQ(v.status, "pass") << (v.reasons.empty() ? "" : v.reasons[0]);
  EXPECT_NEAR(v.ms_to_event, 3100, 1e-6);
  EXPECT_TRUE(v.names_peer && v.names_op && v.names_awaited);
}

TEST(FaultVerdict, EachMissingPropertyFailsWithItsReason) {
  const Case& c = find_case("ll_dispatch.kill");
  const auto fails_with = [&](Observation o, const std::string& reason) {
    const Verdict v = judge(c, o, 5000);
    EXPECT_EQ(v.status, "fail") << reason;
    bool found = false;
    for (const auto& r : v.reasons) found = found || r.find(reason) != std::string::npos;
    EXPECT_TRUE(found) << "no reason containing '" << reason << "'";
  };
  Observation o = timeout_seen(6000);
  fails_with(o, "longer than the bound");
  o = timeout_seen(100);
  o.got_error = false;
  fails_with(o, "no epcomm::Error");
  o = timeout_seen(100);
  o.category = "cuda";
  fails_with(o, "category cuda");
  o = timeout_seen(100);
  o.message = "low-latency dispatch timed out (counter 'x')";
  fails_with(o, "does not name rank 1");
  o = timeout_seen(100);
  o.context_ok = false;
  o.context_error = "cudaDeviceSynchronize: an illegal memory access";
  fails_with(o, "CUDA context unusable");
  o = timeout_seen(100);
  o.survivor_exited = false;
  o.survivor_ending = "stopped by the watchdog";
  fails_with(o, "did not end on its own");
  o = timeout_seen(100);
  o.fault_ns = 0;
  fails_with(o, "no fault time");
  fails_with(Observation{}, "recorded nothing");
}

TEST(FaultVerdict, MaskedCasesMustCarryOn) {
  const Case& c = find_case("ll_dispatch.kill+mask");
  Observation o = timeout_seen(3000);
  EXPECT_EQ(judge(c, o, 5000).status, "fail");
  o.peer_masked = true;
  o.carried_on = true;
  EXPECT_EQ(judge(c, o, 5000).status, "pass");
}

TEST(FaultVerdict, DestructorMustReturnNotThrow) {
  const Case& c = find_case("destroy.kill");
  Observation o = timeout_seen(200);
  o.got_error = false;
  EXPECT_EQ(judge(c, o, 5000).status, "pass");
  o.got_error = true;
  EXPECT_EQ(judge(c, o, 5000).status, "fail");
}

TEST(FaultVerdict, SkippedCasesCarryTheirReason) {
  const Verdict v = judge(find_case("barrier.mismatch_hidden"), Observation{}, 5000);
  EXPECT_EQ(v.status, "skipped");
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_EQ(v.reasons[0], "this call takes no shape or config");
}

TEST(FaultObservation, SurvivesTheHandOff) {
  Observation o = timeout_seen(10);
  o.message = "two\nlines";  // flattened: one key per line
  o.peer_masked = true;
  o.carry_error = "x=y";
  const Observation back = parse_observation(format_observation(o));
  EXPECT_TRUE(back.recorded && back.got_error && back.context_ok && back.peer_masked);
  EXPECT_FALSE(back.carried_on);
  EXPECT_EQ(back.category, "timeout");
  EXPECT_EQ(back.message, "two lines");
  EXPECT_EQ(back.event_ns, o.event_ns);
  EXPECT_EQ(back.carry_error, "x=y");
  EXPECT_FALSE(parse_observation("").recorded);
}

TEST(FaultJson, QuotesAndStructure) {
  EXPECT_EQ(json_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  JsonWriter w;
  w.begin_object().field("s", "x").field("b", true).field("i", 3).field("d", 1.5);
  w.field("nan", 0.0 / 0.0).string_array("l", {"p", "q"}).begin_array("e").end_array().end_object();
  EXPECT_EQ(w.text(),
            "{\"s\":\"x\",\"b\":true,\"i\":3,\"d\":1.500,\"nan\":null,\"l\":[\"p\",\"q\"],\"e\":[]}");
}

TEST(FaultJson, ReportCountsAndExitCode) {
  std::vector<CaseResult> results;
  const Case& pass = find_case("ll_dispatch.kill");
  results.push_back({pass, timeout_seen(3000), judge(pass, timeout_seen(3000), 5000)});
  const Case& skip = find_case("barrier.mismatch_topk");
  results.push_back({skip, {}, judge(skip, {}, 5000)});
  EXPECT_EQ(report_exit_code(results), 0);
  std::string json = report_json({3000, 5000, 2, "GPU"}, results);
  EXPECT_NE(json.find("\"summary\":{\"cases\":2,\"tried\":1,\"survived\":1,\"failed\":0,\"skipped\":1}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"name\":\"ll_dispatch.kill\""), std::string::npos);
  EXPECT_NE(json.find("\"ms_to_error\":3000.000"), std::string::npos) << json;
  const Case& fail = find_case("notify.mismatch_hidden");
  Observation refused;
  refused.peer_error = "x: hidden 4096 refused";
  results.push_back({fail, refused, judge(fail, refused, 5000)});
  EXPECT_EQ(report_exit_code(results), 1);
  json = report_json({3000, 5000, 2, "GPU"}, results);
  EXPECT_NE(json.find("\"failed\":1"), std::string::npos);
  const std::string table = report_table(results);
  EXPECT_NE(table.find("ll_dispatch.kill"), std::string::npos);
  EXPECT_NE(table.find("notify.mismatch_hidden"), std::string::npos);
  EXPECT_NE(table.find("the peer's call threw: x: hidden 4096 refused"), std::string::npos) << table;
  EXPECT_NE(json.find("\"peer_error\":\"x: hidden 4096 refused\""), std::string::npos) << json;
  EXPECT_NE(table.find("this call takes no shape or config"), std::string::npos);
}

}  // namespace
}  // namespace epcomm::faults
