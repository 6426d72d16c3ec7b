// The kernel timer is off unless asked for: then it records nothing and touches no CUDA state, so
// operations pay nothing for it.
#include <gtest/gtest.h>

#include "runtime/kernel_timer.hpp"

namespace epcomm {
namespace {

TEST(KernelTimer, DisabledRecordsNothingAndReportsMinusOne) {
  KernelTimer timer(false);
  EXPECT_FALSE(timer.enabled());
  timer.reset();
  timer.begin(nullptr);  // no GPU here: an enabled timer would fail to create its events
  timer.end(nullptr);
  EXPECT_EQ(timer.total_us(), -1.0);
}

}  // namespace
}  // namespace epcomm
