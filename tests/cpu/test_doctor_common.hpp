// What the doctor's decision tests share: a check's status and a phrase of what it saw.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "doctor/checks.hpp"

namespace epcomm::doctor::testing {

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace epcomm::doctor::testing

// Expects `result` (a CheckResult) to have status `status_` and to mention `needle`.
#define EXPECT_SEEN(result, status_, needle)                                                          \
  do {                                                                                                \
    const ::epcomm::doctor::CheckResult r_ = (result);                                                \
    EXPECT_EQ(r_.status, status_) << r_.seen;                                                         \
    EXPECT_TRUE(::epcomm::doctor::testing::contains(r_.seen, needle)) << "'" << needle << "' not in: " \
                                                                      << r_.seen;                     \
  } while (0)
