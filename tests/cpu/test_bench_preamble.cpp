// The preamble of a high-throughput dispatch (tools/bench/preamble.hpp): the layout kernel of the
// layout call plus the notify kernel of the dispatch call, and nothing else of either.
#include <gtest/gtest.h>

#include <vector>

#include "bench/preamble.hpp"

namespace epcomm::bench {
namespace {

TEST(BenchPreamble, LayoutPlusNotifyOnly) {
  // Labels as the Buffer gives them (src/intranode/layout_op.cpp, ht_dispatch_op.cpp).
  const std::vector<KernelTime> layout_call = {{"layout", 12.25}};
  const std::vector<KernelTime> dispatch_call = {{"notify", 12.5}, {"dispatch", 65.0}};
  const std::optional<double> us = preamble_us(layout_call, dispatch_call);
  ASSERT_TRUE(us.has_value());
  EXPECT_DOUBLE_EQ(*us, 24.75);  // the data kernel is not preamble
}

TEST(BenchPreamble, CopyEnginePathsCountTheirNotifyToo) {
  const std::vector<KernelTime> dispatch_call = {{"notify", 10.0}, {"pack", 20.0}, {"dispatch", 40.0}};
  EXPECT_DOUBLE_EQ(*preamble_us({{"layout", 2.0}}, dispatch_call), 12.0);
}

// A call without one of the kernels has no preamble: timing was off (no kernels at all), or the
// dispatch was cached (no count exchange), or a label changed. Nothing is better than a wrong sum.
TEST(BenchPreamble, NothingWhenAKernelIsMissing) {
  EXPECT_FALSE(preamble_us({}, {}).has_value());
  EXPECT_FALSE(preamble_us({{"layout", 12.0}}, {{"dispatch", 60.0}}).has_value());
  EXPECT_FALSE(preamble_us({}, {{"notify", 12.0}, {"dispatch", 60.0}}).has_value());
  EXPECT_FALSE(preamble_us({{"layout", 12.0}}, {{"prepare", 3.0}, {"dispatch", 60.0}}).has_value());
}

}  // namespace
}  // namespace epcomm::bench
