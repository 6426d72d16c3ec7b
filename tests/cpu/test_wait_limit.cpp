// wait_limit_ns (src/core/wait_limit.hpp): a wait on a peer reports at the timeout; a wait on the rank
// itself later, by a grace period within its bounds, so that a peer's wait timing out at the same
// moment is the one reported (bench/results: the fault matrix's ll_split.kill).
#include <gtest/gtest.h>

#include <cstdint>

#include "core/wait_limit.hpp"

namespace epcomm {
namespace {

constexpr std::uint64_t kMs = 1000000;

TEST(WaitLimit, AWaitOnAPeerRunsOutAtTheTimeout) {
  for (std::uint64_t t : {std::uint64_t{1}, kMs, 3000 * kMs, 20000 * kMs}) EXPECT_EQ(wait_limit_ns(t, false), t);
}

TEST(WaitLimit, AWaitOnItselfRunsOutAnEighthLater) {
  EXPECT_EQ(wait_limit_ns(3000 * kMs, true), 3375 * kMs);
  EXPECT_EQ(wait_limit_ns(80 * kMs, true), 90 * kMs);
}

TEST(WaitLimit, TheGraceIsAtLeastAMillisecondAndAtMostASecond) {
  EXPECT_EQ(wait_limit_ns(0, true), kMs);
  EXPECT_EQ(wait_limit_ns(2 * kMs, true), 3 * kMs);
  EXPECT_EQ(wait_limit_ns(20000 * kMs, true), 21000 * kMs);
  // The largest timeout EPCOMM_TIMEOUT_MS allows (2^31 - 1 ms) does not overflow.
  const std::uint64_t largest = std::uint64_t{0x7fffffff} * kMs;
  EXPECT_EQ(wait_limit_ns(largest, true), largest + 1000 * kMs);
}

TEST(WaitLimit, AWaitOnItselfAlwaysOutlastsAWaitOnAPeer) {
  for (std::uint64_t t = 0; t < 40000 * kMs; t += 997 * kMs) EXPECT_GT(wait_limit_ns(t, true), wait_limit_ns(t, false));
}

}  // namespace
}  // namespace epcomm
