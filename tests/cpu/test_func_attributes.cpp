// The ledger behind raise_func_attribute (src/core/func_attributes.hpp): a kernel attribute is set
// once per (device, kernel, attribute) and raised, never lowered.
#include <gtest/gtest.h>

#include "core/func_attributes.hpp"

namespace epcomm {
namespace {

int kernel_a = 0, kernel_b = 0;  // stand-ins: only their addresses are used
constexpr int kLimit = 8;        // an attribute id

TEST(AttributeLedger, SetsOnceThenOnlyRaises) {
  AttributeLedger ledger;
  EXPECT_TRUE(ledger.needs(0, &kernel_a, kLimit, 60000));
  ledger.record(0, &kernel_a, kLimit, 60000);
  EXPECT_FALSE(ledger.needs(0, &kernel_a, kLimit, 60000));  // the same launch again: no driver call
  EXPECT_FALSE(ledger.needs(0, &kernel_a, kLimit, 50000));  // smaller: the limit already serves it
  EXPECT_TRUE(ledger.needs(0, &kernel_a, kLimit, 70000));   // larger: raised
  ledger.record(0, &kernel_a, kLimit, 70000);
  ledger.record(0, &kernel_a, kLimit, 50000);  // a late record of a smaller value lowers nothing
  EXPECT_FALSE(ledger.needs(0, &kernel_a, kLimit, 70000));
  EXPECT_TRUE(ledger.needs(0, &kernel_a, kLimit, 70001));
}

TEST(AttributeLedger, KeysAreDeviceKernelAndAttribute) {
  AttributeLedger ledger;
  ledger.record(0, &kernel_a, kLimit, 60000);
  EXPECT_TRUE(ledger.needs(1, &kernel_a, kLimit, 60000));  // another device
  EXPECT_TRUE(ledger.needs(0, &kernel_b, kLimit, 60000));  // another kernel
  EXPECT_TRUE(ledger.needs(0, &kernel_a, kLimit + 1, 0));  // another attribute, even at 0
  ledger.record(0, &kernel_a, kLimit + 1, 0);
  EXPECT_FALSE(ledger.needs(0, &kernel_a, kLimit + 1, 0));  // a preference set once
}

}  // namespace
}  // namespace epcomm
