// The kernel timer is off unless asked for: then it records nothing and touches no CUDA state, so
// operations pay nothing for it. Its timeline text is checked here too.
#include <gtest/gtest.h>

#include "core/kernel_timer.hpp"

namespace epcomm {
namespace {

TEST(KernelTimer, DisabledRecordsNothingAndReportsMinusOne) {
  KernelTimer timer(false);
  EXPECT_FALSE(timer.enabled());
  timer.reset(nullptr);  // no GPU here: an enabled timer would fail to create its events
  timer.begin(nullptr, "kernel");
  timer.end(nullptr);
  timer.begin_copy(nullptr, "chunk");
  timer.end_copy(nullptr);
  timer.host_step("queued");
  EXPECT_EQ(timer.total_us(), -1.0);
  EXPECT_EQ(timer.timeline(), "");
}

// Buffer::set_kernel_timing switches the timer between calls; off, it reports nothing whatever it
// recorded before (no GPU here: it is never reset while on, which would create events).
TEST(KernelTimer, SwitchedOffOrOnBetweenCallsReportsNothingYet) {
  KernelTimer timer(true);
  timer.set_enabled(false);
  EXPECT_FALSE(timer.enabled());
  timer.reset(nullptr);
  timer.begin(nullptr, "kernel");
  timer.end(nullptr);
  EXPECT_TRUE(timer.kernels().empty());
  EXPECT_EQ(timer.total_us(), -1.0);
  timer.set_enabled(true);
  EXPECT_TRUE(timer.enabled());
  EXPECT_TRUE(timer.kernels().empty());  // the last call ran untimed: no kernels to report
  EXPECT_EQ(timer.total_us(), 0.0);
}

TEST(KernelTimer, TimelineListsGapsKernelsAndHostSteps) {
  const std::string text = format_timeline({{"notify", 2.04, 10.26}, {"dispatch", 18.0, 66.0}},
                                           {{"queued", 5.31}, {"seen", 20.0}});
  EXPECT_EQ(text, "gpu: +2.0 notify 10.3 +18.0 dispatch 66.0 | host: queued 5.3, seen 20.0");
  EXPECT_EQ(format_timeline({}, {}), "gpu: | host:");
  EXPECT_EQ(format_timeline({{"pack", 1.3, 6.7}}, {}, {{"chunk", 40.21, 41.0}, {"chunk", 81.3, 40.66}}),
            "gpu: +1.3 pack 6.7 | host: | copies: chunk @40.2 41.0, chunk @81.3 40.7");
}

}  // namespace
}  // namespace epcomm
