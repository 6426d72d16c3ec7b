// HtOptions (the high-throughput transfer paths): checked by field, resolved with the environment's
// overrides. Catches an option silently ignored, an override that does not apply, or an out-of-range
// value reaching the kernels' planning.
#include <gtest/gtest.h>

#include <cstdlib>

#include "epcomm/ht_options.hpp"
#include "expect_error.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm {
namespace {

using test::expect_arg_error;

// Sets (or unsets) one variable for a scope.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~EnvVar() { unsetenv(name_); }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;

 private:
  const char* name_;
};

TEST(HtOptions, DefaultsResolveToTheDefaultPaths) {
  const EnvVar a("EPCOMM_HT_DISPATCH_CE", nullptr), b("EPCOMM_HT_DISPATCH_STRAIGHT", nullptr),
      c("EPCOMM_HT_COMBINE_PULL", nullptr), d("EPCOMM_HT_COMBINE_CE", nullptr);
  const HtTuning t = HtTuning::resolve({});
  EXPECT_EQ(t.dispatch_copy_chunks, 0);
  EXPECT_EQ(t.dispatch_straight, kStraightPeers);
  EXPECT_EQ(t.combine_pull, kCombinePush);
  EXPECT_EQ(t.combine_copy_chunks, 0);
}

TEST(HtOptions, FieldsReachTheTuningAndBack) {
  const EnvVar a("EPCOMM_HT_DISPATCH_CE", nullptr), b("EPCOMM_HT_DISPATCH_STRAIGHT", nullptr),
      c("EPCOMM_HT_COMBINE_PULL", nullptr), d("EPCOMM_HT_COMBINE_CE", nullptr);
  const HtOptions o{.dispatch_copy_chunks = 4,
                    .dispatch_straight = StraightCopies::kPeersAndOwnRows,
                    .combine = CombineTransfer::kPullStagedByCopyEngine,
                    .combine_copy_chunks = 2};
  const HtTuning t = HtTuning::resolve(o);
  EXPECT_EQ(t.dispatch_copy_chunks, 4);
  EXPECT_EQ(t.dispatch_straight, kStraightAll);
  EXPECT_EQ(t.combine_pull, kCombinePullCopyEngine);
  EXPECT_EQ(t.combine_copy_chunks, 2);
  const HtOptions back = t.options();
  EXPECT_EQ(back.dispatch_copy_chunks, 4);
  EXPECT_EQ(back.dispatch_straight, StraightCopies::kPeersAndOwnRows);
  EXPECT_EQ(back.combine, CombineTransfer::kPullStagedByCopyEngine);
  EXPECT_EQ(back.combine_copy_chunks, 2);
}

TEST(HtOptions, EnvironmentOverridesOnlyTheFieldsItSets) {
  const EnvVar a("EPCOMM_HT_DISPATCH_CE", "8"), b("EPCOMM_HT_DISPATCH_STRAIGHT", nullptr),
      c("EPCOMM_HT_COMBINE_PULL", "1"), d("EPCOMM_HT_COMBINE_CE", nullptr);
  const HtTuning t = HtTuning::resolve({.dispatch_copy_chunks = 2, .combine_copy_chunks = 3});
  EXPECT_EQ(t.dispatch_copy_chunks, 8);       // overridden
  EXPECT_EQ(t.combine_pull, kCombinePullSms);  // overridden
  EXPECT_EQ(t.combine_copy_chunks, 3);        // the option
  EXPECT_EQ(t.dispatch_straight, kStraightPeers);
}

// Buffer::set_ht_options: exactly the options given, whatever the environment says (the benchmark
// times each path in one run), and checked.
TEST(HtOptions, SetTakesTheOptionsAsGiven) {
  const EnvVar a("EPCOMM_HT_DISPATCH_CE", "8"), b("EPCOMM_HT_COMBINE_PULL", "2");
  HtTuning t = HtTuning::resolve({});
  ASSERT_EQ(t.dispatch_copy_chunks, 8);
  t.set({.dispatch_copy_chunks = 0, .combine = CombineTransfer::kPush});
  EXPECT_EQ(t.dispatch_copy_chunks, 0);
  EXPECT_EQ(t.combine_pull, kCombinePush);
  expect_arg_error([&] { t.set({.combine_copy_chunks = 99}); }, "ht.combine_copy_chunks");
}

TEST(HtOptions, OutOfRangeFieldsAreNamed) {
  expect_arg_error([] { check_ht_options({.dispatch_copy_chunks = 9}); },
                   "ht.dispatch_copy_chunks: expected 0 to 8, got 9");
  expect_arg_error([] { check_ht_options({.combine_copy_chunks = -1}); }, "ht.combine_copy_chunks");
  expect_arg_error([] { check_ht_options({.dispatch_straight = static_cast<StraightCopies>(3)}); },
                   "ht.dispatch_straight: expected 0 to 2, got 3");
  expect_arg_error([] { check_ht_options({.combine = static_cast<CombineTransfer>(-1)}); }, "ht.combine");
  EXPECT_NO_THROW(check_ht_options({}));
}

}  // namespace
}  // namespace epcomm
