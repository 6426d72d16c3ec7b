// The benchmark's own checks. They throw epcomm::Error, the public exception type, so one handler
// serves the library's failures and the benchmark's, and the message ends with the check's
// file:line. Host code only; CUDA calls are checked by BENCH_CUDA (bench/cuda.hpp).
#pragma once

#include <sstream>
#include <string>

#include "epcomm/error.hpp"

namespace epcomm::bench {

// The streamed parts as one string: concat("got ", 3) is "got 3".
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace epcomm::bench

// Throws epcomm::Error(category) with the streamed message parts when `cond` is false.
#define BENCH_REQUIRE(cond, category, ...)                                                         \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      throw ::epcomm::Error((category), ::epcomm::bench::concat(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

// A bad flag, environment variable or argument: the message names it, what was expected and what
// was given.
#define BENCH_CHECK_ARG(cond, ...) BENCH_REQUIRE(cond, ::epcomm::ErrorCategory::kInvalidArgument, __VA_ARGS__)
