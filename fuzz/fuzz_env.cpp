// libFuzzer target: environment values into the env registry (src/core/env.hpp) and what reads the
// launch environment (tcp_bootstrap_options_from_env, the job token, the log level).
//
// Input (fuzz_input.hpp): byte 0 picks
//   0  the parsers on the rest of the input, NUL bytes included
//   1  one registered variable (byte 1 picks it) set to a string, read by its typed getter
//   2  a launch environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, EPCOMM_BOOTSTRAP_TIMEOUT_MS,
//      EPCOMM_JOB_TOKEN, TORCHELASTIC_RUN_ID) read by tcp_bootstrap_options_from_env; a world of one
//      is then made (it needs no network)
// Invariants: a malformed value is an epcomm::Error of category kInvalidArgument; a value that
// parses as an integer parses as the same number of milliseconds as a duration.
#include <stdlib.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/env.hpp"
#include "core/log.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "fuzz_input.hpp"

namespace epcomm::fuzz {
namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

void parsers(std::string_view text) {
  std::optional<std::int64_t> as_int;
  try {
    as_int = env::parse_int("FUZZ", text);
  } catch (const Error& e) {
    require(e.category() == ErrorCategory::kInvalidArgument);
  }
  try {
    const std::chrono::milliseconds ms = env::parse_duration("FUZZ", text);
    require(!as_int || ms.count() == *as_int);
  } catch (const Error& e) {
    require(e.category() == ErrorCategory::kInvalidArgument);
    require(!as_int);  // an integer is a duration in milliseconds
  }
  try {
    env::parse_bool("FUZZ", text);
  } catch (const Error& e) {
    require(e.category() == ErrorCategory::kInvalidArgument);
  }
  log::parse_level(text);
}

// setenv takes C strings: the value ends at its first NUL byte.
void set(const char* name, const std::string& value) {
  ::setenv(name, value.c_str(), 1);
}

void one_variable(Input& in) {
  const std::span<const env::Entry> registry = env::registry();
  const env::Entry& e = registry[in.u8() % registry.size()];
  const std::string name(e.name);
  set(name.c_str(), in.str());
  try {
    switch (e.type) {
      case env::Type::kInt:
        env::get_int(e.name);
        break;
      case env::Type::kBool:
        env::get_bool(e.name);
        break;
      case env::Type::kString:
        env::get_string(e.name);
        break;
      case env::Type::kDuration:
        env::get_duration(e.name);
        break;
    }
  } catch (const Error& err) {
    require(err.category() == ErrorCategory::kInvalidArgument);
  }
  ::unsetenv(name.c_str());
}

constexpr std::array kLaunch = {"MASTER_ADDR",      "MASTER_PORT",         "RANK",           "WORLD_SIZE",
                                "EPCOMM_BOOTSTRAP_TIMEOUT_MS", "EPCOMM_JOB_TOKEN", "TORCHELASTIC_RUN_ID"};

void launch_environment(Input& in) {
  for (const char* name : kLaunch) set(name, in.str());
  try {
    const TcpBootstrapOptions o = tcp_bootstrap_options_from_env();
    require(!o.job_token.empty());
    if (o.world_size == 1) make_tcp_bootstrap(o);
  } catch (const Error& e) {
    require(e.category() == ErrorCategory::kInvalidArgument);
  }
  for (const char* name : kLaunch) ::unsetenv(name);
}

}  // namespace
}  // namespace epcomm::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  epcomm::fuzz::Input in(data, size);
  switch (in.u8() % 3) {
    case 0: {
      const auto rest = in.rest();
      epcomm::fuzz::parsers(std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size()));
      break;
    }
    case 1:
      epcomm::fuzz::one_variable(in);
      break;
    default:
      epcomm::fuzz::launch_environment(in);
      break;
  }
  return 0;
}
