// What the host says when a kernel reports a failure: the message names the rank, the peer, the
// operation and the counter (timeouts), or the argument, token and value (invalid inputs).
#include <gtest/gtest.h>

#include <string>

#include "epcomm/error.hpp"
#include "core/device_status.hpp"
#include "core/status_message.hpp"

namespace epcomm {
namespace {

DeviceStatus make(StatusCode code, OpId op, CounterId counter, int rank, int peer, std::int64_t expected,
                  std::int64_t observed) {
  DeviceStatus s{};
  s.code = static_cast<std::int32_t>(code);
  s.op = static_cast<std::int32_t>(op);
  s.counter = static_cast<std::int32_t>(counter);
  s.rank = rank;
  s.peer = peer;
  s.expected = expected;
  s.observed = observed;
  return s;
}

TEST(StatusMessage, TimeoutNamesRankPeerOperationAndCounter) {
  const Error e =
      status_error(make(StatusCode::kTimeout, OpId::kDispatch, CounterId::kRowsArrived, 3, 5, 4096, 1200),
                   20000, "f.cpp", 7);
  EXPECT_EQ(e.category(), ErrorCategory::kTimeout);
  EXPECT_EQ(
      e.message(),
      "rank 3: dispatch timed out after 20000 ms waiting for rank 5 (counter 'rows arrived': expected 4096, "
      "observed 1200)");
}

TEST(StatusMessage, InvalidExpertNamesTheArgumentTokenAndValue) {
  const Error e = status_error(
      make(StatusCode::kInvalidExpert, OpId::kLayout, CounterId::kNone, 1, -1, 300, 17), 1, "f", 1);
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  EXPECT_NE(e.message().find("topk_idx: rank 1, token 17 names expert 300"), std::string::npos)
      << e.message();
  EXPECT_NE(e.message().find("get_dispatch_layout"), std::string::npos) << e.message();
}

TEST(StatusMessage, RegionTooSmallNamesTheSettingAndTheRows) {
  const Error e = status_error(
      make(StatusCode::kRegionTooSmall, OpId::kCombine, CounterId::kNone, 0, 1, 100, 250), 1, "f", 1);
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  EXPECT_NE(e.message().find("num_nvl_bytes"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("250 rows on rank 1, but only 100 fit"), std::string::npos) << e.message();
}

TEST(StatusMessage, LowLatencyOverflowNamesTheDuplicateSlotsNotTheRegion) {
  const Error e = status_error(
      make(StatusCode::kRegionTooSmall, OpId::kLlDispatch, CounterId::kNone, 0, 0, 16, 32), 1, "f", 1);
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
  EXPECT_NE(e.message().find("topk_idx"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("32 rows on rank 0, but only 16 fit"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("more than one slot"), std::string::npos) << e.message();
  EXPECT_EQ(e.message().find("num_nvl_bytes"), std::string::npos) << e.message();
}

TEST(StatusMessage, UnknownCodeIsAnInternalError) {
  DeviceStatus s{};
  s.code = 99;
  EXPECT_EQ(status_error(s, 1, "f", 1).category(), ErrorCategory::kInternal);
}

TEST(StatusMessage, EveryOperationAndCounterHasAName) {
  for (int op = 1; op <= static_cast<int>(OpId::kLlCombine); ++op)  // 0 is kNone
    EXPECT_STRNE(to_string(static_cast<OpId>(op)), "unknown operation") << op;
  for (int c = 0; c <= static_cast<int>(CounterId::kRowsStaged); ++c)
    EXPECT_STRNE(to_string(static_cast<CounterId>(c)), "unknown counter") << c;
}

}  // namespace
}  // namespace epcomm
