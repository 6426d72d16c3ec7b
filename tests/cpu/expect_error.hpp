// Expecting an epcomm::Error from a call, shared by the CPU tests of argument checks.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "epcomm/error.hpp"

namespace epcomm::test {

// Expects `fn` to throw an epcomm::Error of `category` whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle, ErrorCategory category) {
  try {
    fn();
    ADD_FAILURE() << "expected an epcomm::Error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    EXPECT_NE(e.message().find(needle), std::string::npos) << "message: " << e.message();
  }
}

// The same for an invalid argument, the category of every check of a caller's input.
template <typename Fn>
void expect_arg_error(Fn&& fn, const std::string& needle,
                      ErrorCategory category = ErrorCategory::kInvalidArgument) {
  expect_error(static_cast<Fn&&>(fn), needle, category);
}

}  // namespace epcomm::test
