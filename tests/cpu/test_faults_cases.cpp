// The fault matrix's table (tools/faults/fault_cases.cpp): every phase meets every fault, names are
// unique and found again, skips give a reason, and the expectations ask for what issue 22 asks.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "expect_error.hpp"
#include "faults/fault_cases.hpp"

namespace epcomm::faults {
namespace {

constexpr int kPhases = 11, kFaults = 4, kFields = 4, kMaskCases = 5;

TEST(FaultCases, EveryPhaseMeetsEveryFault) {
  std::set<std::pair<Phase, Fault>> seen;
  for (const Case& c : all_cases()) seen.insert({c.phase, c.fault});
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kPhases * kFaults));
  // kill, stall and other_op once per phase, a mismatch per field, and the masked kills.
  EXPECT_EQ(all_cases().size(), static_cast<std::size_t>(kPhases * (3 + kFields) + kMaskCases));
}

TEST(FaultCases, NamesAreUniqueAndFoundAgain) {
  std::set<std::string> names;
  for (const Case& c : all_cases()) {
    const std::string name = case_name(c);
    EXPECT_EQ(name.find(' '), std::string::npos) << name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    EXPECT_EQ(case_name(find_case(name)), name);
  }
  EXPECT_EQ(case_name(find_case("notify.mismatch_hidden")), "notify.mismatch_hidden");
  EXPECT_EQ(case_name(find_case("barrier.kill+mask")), "barrier.kill+mask");
}

TEST(FaultCases, UnknownNameIsAnErrorNamingIt) {
  test::expect_arg_error([] { find_case("notify.explode"); }, "notify.explode");
}

TEST(FaultCases, FilterKeepsCasesContainingAnyWord) {
  EXPECT_EQ(select_cases("").size(), all_cases().size());
  for (const Case& c : select_cases("ll_combine.kill,barrier.stall")) {
    const std::string name = case_name(c);
    EXPECT_TRUE(name.find("ll_combine.kill") != std::string::npos || name == "barrier.stall") << name;
  }
  EXPECT_EQ(select_cases("ll_combine.kill,barrier.stall").size(), 3u);  // + ll_combine.kill+mask
  EXPECT_TRUE(select_cases("no-such-case").empty());
}

TEST(FaultCases, SkipsSayWhyAndOthersExpectSomething) {
  for (const Case& c : all_cases()) {
    const std::string name = case_name(c);
    if (c.expect.outcome == Outcome::kSkipped) {
      EXPECT_FALSE(c.expect.skip_reason.empty()) << name;
      EXPECT_EQ(c.fault, Fault::kMismatch) << name << ": only mismatches of a value a call lacks are skipped";
      continue;
    }
    EXPECT_TRUE(c.expect.skip_reason.empty()) << name;
    if (c.expect.outcome != Outcome::kError) {
      EXPECT_EQ(c.phase, Phase::kDestroy) << name << ": only a destructor returns instead of throwing";
      continue;
    }
    EXPECT_FALSE(c.expect.categories.empty()) << name;
    EXPECT_FALSE(c.expect.op_words.empty()) << name;
    EXPECT_FALSE(c.expect.awaited_words.empty()) << name;
    EXPECT_TRUE(c.expect.names_peer) << name;
  }
}

TEST(FaultCases, MismatchesExpectWhatDiffersNotATimeout) {
  const Case& c = find_case("notify.mismatch_topk");
  ASSERT_EQ(c.expect.categories.size(), 1u);
  EXPECT_EQ(c.expect.categories[0], ErrorCategory::kInvalidArgument);
  EXPECT_EQ(c.expect.awaited_words[0], "num_topk is");
  const Case& sms = find_case("ht_combine.mismatch_num_sms");
  EXPECT_EQ(sms.expect.awaited_words[0], "num_sms (blocks) is");
  const Case& kill = find_case("ll_dispatch.kill");
  EXPECT_EQ(kill.expect.categories, std::vector<ErrorCategory>{ErrorCategory::kTimeout});
  EXPECT_EQ(kill.expect.op_words, std::vector<std::string>{"low-latency dispatch"});
}

TEST(FaultCases, OnlyMaskedKillsExpectTheSurvivorToCarryOn) {
  int masked = 0;
  for (const Case& c : all_cases()) {
    EXPECT_EQ(c.mask_on_timeout, c.expect.survivor_carries_on) << case_name(c);
    masked += c.mask_on_timeout;
  }
  EXPECT_EQ(masked, kMaskCases);
}

TEST(FaultCases, LowLatencyPhasesAreTheLowLatencyBuffers) {
  EXPECT_TRUE(is_low_latency(Phase::kLlSplit));
  EXPECT_TRUE(is_low_latency(Phase::kCreate));  // create cases make a low-latency Buffer
  EXPECT_FALSE(is_low_latency(Phase::kNotify));
  EXPECT_FALSE(is_low_latency(Phase::kDestroy));
}

}  // namespace
}  // namespace epcomm::faults
