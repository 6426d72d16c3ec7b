// The benchmark's ways of moving rows: the Buffer's own first under "epcomm", then every other
// way exactly once under its own name.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "bench/variants.hpp"

namespace epcomm::bench {
namespace {

std::set<std::string> names(const std::vector<CombineVariant>& v) {
  std::set<std::string> out;
  for (const CombineVariant& c : v) out.insert(c.impl);
  return out;
}

TEST(BenchVariants, OwnScheduleFirstThenEveryOtherOnce) {
  for (const int pull : {0, 1, 2}) {
    const std::vector<CombineVariant> v = combine_variants({pull});
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0].impl, "epcomm");
    EXPECT_EQ(v[0].schedule.pull, pull);
    std::set<std::tuple<int, int>> schedules;
    for (const CombineVariant& c : v) schedules.insert({c.schedule.pull, c.schedule.copy_chunks});
    EXPECT_EQ(schedules.size(), 4u);
    EXPECT_EQ(names(v).size(), 4u);
  }
}

TEST(BenchVariants, TheDefaultScheduleNamesTheOthers) {
  EXPECT_EQ(names(combine_variants({/*pull=*/0})),
            (std::set<std::string>{"epcomm", "epcomm-pull", "epcomm-pull-ce", "epcomm-push-ce"}));
}

TEST(BenchVariants, CopyEnginePushIsOneVariantWhateverTheOtherKnobs) {
  const std::vector<CombineVariant> v = combine_variants({/*pull=*/1, /*copy_chunks=*/2});
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].impl, "epcomm");
  EXPECT_EQ(v[0].schedule.copy_chunks, 2);
  EXPECT_EQ(names(v).count("epcomm-push-ce"), 0u);  // the Buffer's own already is
  EXPECT_EQ(names(v).count("epcomm-pull"), 1u);     // the SM schedules all appear
}

TEST(BenchVariants, DispatchRunsTheOtherWayOfMovingRowsToo) {
  const std::vector<DispatchVariant> sm = dispatch_variants(0);
  ASSERT_EQ(sm.size(), 2u);
  EXPECT_EQ(sm[0].impl, "epcomm");
  EXPECT_EQ(sm[0].copy_chunks, 0);
  EXPECT_EQ(sm[1].impl, "epcomm-ce");
  EXPECT_EQ(sm[1].copy_chunks, kBenchCopyChunks);
  std::vector<std::string> swept;
  for (const DispatchVariant& v : dispatch_variants(0, {2, kBenchCopyChunks, 8})) swept.push_back(v.impl);
  EXPECT_EQ(swept, (std::vector<std::string>{"epcomm", "epcomm-ce2", "epcomm-ce", "epcomm-ce8"}));
  const std::vector<DispatchVariant> ce = dispatch_variants(3, {2, 8});  // SM stores, whatever the sweep
  ASSERT_EQ(ce.size(), 2u);
  EXPECT_EQ(ce[0].impl, "epcomm");
  EXPECT_EQ(ce[0].copy_chunks, 3);
  EXPECT_EQ(ce[1].impl, "epcomm-sm");
  EXPECT_EQ(ce[1].copy_chunks, 0);
}

}  // namespace
}  // namespace epcomm::bench
