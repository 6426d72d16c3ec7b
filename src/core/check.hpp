// Internal helpers that raise epcomm::Error. Host code only.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "epcomm/error.hpp"

namespace epcomm::detail {

template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

[[noreturn]] inline void raise(ErrorCategory category, std::string message, const char* file, int line) {
  throw Error(category, std::move(message), file, line);
}

}  // namespace epcomm::detail

// Throws epcomm::Error(category) with the streamed message parts when `cond` is false.
#define EPCOMM_REQUIRE(cond, category, ...)                                                           \
  do {                                                                                                \
    if (!(cond))                                                                                      \
      ::epcomm::detail::raise((category), ::epcomm::detail::concat(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

// Argument checks: the message must name the argument, what was expected and what was given.
#define EPCOMM_CHECK_ARG(cond, ...) \
  EPCOMM_REQUIRE(cond, ::epcomm::ErrorCategory::kInvalidArgument, __VA_ARGS__)

#define EPCOMM_THROW(category, ...) \
  ::epcomm::detail::raise((category), ::epcomm::detail::concat(__VA_ARGS__), __FILE__, __LINE__)
