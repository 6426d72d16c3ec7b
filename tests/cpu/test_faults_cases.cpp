// The fault matrix's table (tools/faults/fault_cases.cpp): every phase meets every fault, names are
// unique and found again, skips give a reason, and the expectations ask for what issue 22 asks.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "expect_error.hpp"
#include "faults/fault_cases.hpp"

namespace epcomm::faults {
namespace {

constexpr int kPhases = 12, kFaults = 4, kFields = 4, kMaskCases = 6;

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

// Across two NVLink domains the matrix keeps every case and its expectation, but skips, saying
// why, exactly what the multi-domain Buffer does differently by design.
TEST(FaultCases, TwoDomainsSkipOnlyWhatTheMultiDomainBufferLacks) {
  const std::vector<Case> one = select_cases(""), two = select_cases("", /*two_domains=*/true);
  ASSERT_EQ(one.size(), two.size());
  std::set<std::string> newly_skipped;
  for (std::size_t i = 0; i < one.size(); ++i) {
    const std::string name = case_name(one[i]);
    EXPECT_EQ(case_name(two[i]), name);
    if (one[i].expect.outcome == Outcome::kSkipped) {
      EXPECT_EQ(two[i].expect.skip_reason, one[i].expect.skip_reason) << name;
    } else if (two[i].expect.outcome == Outcome::kSkipped) {
      EXPECT_FALSE(two[i].expect.skip_reason.empty()) << name;
      newly_skipped.insert(name);
    } else {
      EXPECT_EQ(two[i].expect.awaited_words, one[i].expect.awaited_words) << name;
      EXPECT_EQ(two[i].expect.categories, one[i].expect.categories) << name;
    }
  }
  const std::set<std::string> expected{"barrier.kill",        "barrier.stall",        "barrier.other_op",
                                       "barrier.kill+mask",   "notify.kill+mask",     "ht_combine.kill+mask",
                                       "ht_combine.mismatch_num_sms"};
  EXPECT_EQ(newly_skipped, expected);
  // Low-latency Buffers across domains read the mask: their masked kills still carry on.
  for (const Case& c : two)
    if (c.mask_on_timeout && is_low_latency(c.phase)) EXPECT_TRUE(c.expect.survivor_carries_on) << case_name(c);
}

TEST(FaultCases, LowLatencyPhasesAreTheLowLatencyBuffers) {
  EXPECT_TRUE(is_low_latency(Phase::kLlSplit));
  EXPECT_TRUE(is_low_latency(Phase::kCreate));  // create cases make a low-latency Buffer
  EXPECT_FALSE(is_low_latency(Phase::kNotify));
  EXPECT_FALSE(is_low_latency(Phase::kDestroy));
}

}  // namespace
}  // namespace epcomm::faults
