// The environment registry: defaults, parsing, errors that name the variable and the value, and
// the torchrun variables behind tcp_bootstrap_options_from_env().
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/env.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "scoped_env.hpp"

namespace epcomm {
namespace {

using test::ScopedEnv;

// Runs fn, expects epcomm::Error(category) whose message contains every needle.
template <typename Fn>
void expect_error(Fn&& fn, ErrorCategory category, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an epcomm::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    for (const std::string& needle : needles) {
      EXPECT_NE(e.message().find(needle), std::string::npos) << "'" << needle << "' not in: " << e.message();
    }
  }
}

TEST(Env, RegistryListsEveryVariableOnceWithDocs) {
  std::set<std::string> names;
  for (const env::Entry& e : env::registry()) {
    EXPECT_TRUE(names.insert(std::string(e.name)).second) << e.name << " registered twice";
    EXPECT_FALSE(e.doc.empty()) << e.name;
  }
  for (const char* required :
       {"EPCOMM_LOG", "EPCOMM_BOOTSTRAP_TIMEOUT_MS", "EPCOMM_TIMEOUT_MS", "MASTER_ADDR", "MASTER_PORT",
        "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}) {
    EXPECT_EQ(names.count(required), 1u) << required;
  }
  const std::string table = env::registry_markdown();
  for (const std::string& name : names) EXPECT_NE(table.find("`" + name + "`"), std::string::npos) << name;
}

// STYLE: every variable is documented in the README for users, and every EPCOMM_ variable the
// README documents exists.
TEST(Env, ReadmeDocumentsExactlyTheRegisteredVariables) {
  std::ifstream file(std::string(EPCOMM_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(file) << "README.md not found under " << EPCOMM_SOURCE_DIR;
  const std::string readme((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::set<std::string> registered;
  for (const env::Entry& e : env::registry()) {
    registered.insert(std::string(e.name));
    EXPECT_NE(readme.find("`" + std::string(e.name)), std::string::npos) << e.name << " is not in README.md";
  }
  // Table rows of the README's environment section name library variables as `EPCOMM_...` (other
  // tables, such as the CMake options', may name EPCOMM_ options too).
  const std::size_t begin = readme.find("## Environment variables");
  ASSERT_NE(begin, std::string::npos) << "README.md has no '## Environment variables' section";
  const std::size_t end = readme.find("\n## ", begin + 1);
  const std::string section = readme.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  const std::regex row(R"(\n\| `(EPCOMM_[A-Z0-9_]+)` \|)");
  int rows = 0;
  for (auto it = std::sregex_iterator(section.begin(), section.end(), row); it != std::sregex_iterator();
       ++it, ++rows)
    EXPECT_EQ(registered.count((*it)[1].str()), 1u) << (*it)[1].str() << " is documented but not registered";
  EXPECT_GE(rows, 10) << "the README's environment table was not found";
}

TEST(Env, DefaultsParseAsTheirType) {
  for (const env::Entry& e : env::registry()) {
    if (!e.default_value) continue;
    ScopedEnv unset({{std::string(e.name).c_str(), std::nullopt}});
    switch (e.type) {
      case env::Type::kInt:
        EXPECT_NO_THROW(env::get_int(e.name)) << e.name;
        break;
      case env::Type::kBool:
        EXPECT_NO_THROW(env::get_bool(e.name)) << e.name;
        break;
      case env::Type::kString:
        EXPECT_NO_THROW(env::get_string(e.name)) << e.name;
        break;
      case env::Type::kDuration:
        EXPECT_NO_THROW(env::get_duration(e.name)) << e.name;
        break;
    }
  }
}

TEST(Env, DefaultsAndValues) {
  {
    ScopedEnv e({{"EPCOMM_LOG", std::nullopt},
                 {"EPCOMM_BOOTSTRAP_TIMEOUT_MS", std::nullopt},
                 {"EPCOMM_TIMEOUT_MS", std::nullopt}});
    EXPECT_EQ(env::get_string("EPCOMM_LOG"), "warn");
    EXPECT_EQ(env::get_duration("EPCOMM_BOOTSTRAP_TIMEOUT_MS"), std::chrono::milliseconds(30000));
    EXPECT_EQ(env::get_duration("EPCOMM_TIMEOUT_MS"), std::chrono::milliseconds(20000));
    EXPECT_FALSE(env::is_set("EPCOMM_LOG"));
  }
  {
    ScopedEnv e(
        {{"EPCOMM_LOG", "debug"}, {"EPCOMM_BOOTSTRAP_TIMEOUT_MS", "2s"}, {"EPCOMM_TIMEOUT_MS", "1500"}});
    EXPECT_EQ(env::get_string("EPCOMM_LOG"), "debug");
    EXPECT_EQ(env::get_duration("EPCOMM_BOOTSTRAP_TIMEOUT_MS"), std::chrono::milliseconds(2000));
    EXPECT_EQ(env::get_int("EPCOMM_BOOTSTRAP_TIMEOUT_MS"), 2000);  // durations read as ms
    EXPECT_EQ(env::get_duration("EPCOMM_TIMEOUT_MS"), std::chrono::milliseconds(1500));
    EXPECT_TRUE(env::is_set("EPCOMM_LOG"));
    EXPECT_EQ(env::raw("EPCOMM_LOG"), "debug");
  }
  {
    ScopedEnv e({{"EPCOMM_LOG", ""}});  // empty counts as unset
    EXPECT_EQ(env::get_string("EPCOMM_LOG"), "warn");
  }
}

TEST(Env, MalformedValuesNameTheVariableAndValue) {
  {
    ScopedEnv e({{"EPCOMM_BOOTSTRAP_TIMEOUT_MS", "abc"}});
    expect_error([] { env::get_duration("EPCOMM_BOOTSTRAP_TIMEOUT_MS"); }, ErrorCategory::kInvalidArgument,
                 {"EPCOMM_BOOTSTRAP_TIMEOUT_MS", "'abc'"});
  }
  {
    ScopedEnv e({{"EPCOMM_TIMEOUT_MS", "0"}});
    expect_error([] { env::get_duration("EPCOMM_TIMEOUT_MS"); }, ErrorCategory::kInvalidArgument,
                 {"EPCOMM_TIMEOUT_MS", "'0'", "out of range"});
  }
  {
    ScopedEnv e({{"EPCOMM_TIMEOUT_MS", "5h"}});
    expect_error([] { env::get_int("EPCOMM_TIMEOUT_MS"); }, ErrorCategory::kInvalidArgument,
                 {"EPCOMM_TIMEOUT_MS", "'5h'"});
  }
  {
    ScopedEnv e({{"EPCOMM_LOG", "loud"}});
    expect_error([] { env::get_string("EPCOMM_LOG"); }, ErrorCategory::kInvalidArgument,
                 {"EPCOMM_LOG", "'loud'", "off|error|warn|info|debug"});
  }
  {
    ScopedEnv e({{"MASTER_PORT", "70000"}});
    expect_error([] { env::get_int("MASTER_PORT"); }, ErrorCategory::kInvalidArgument,
                 {"MASTER_PORT", "'70000'", "[1, 65535]"});
  }
  {
    ScopedEnv e({{"RANK", "3x"}});
    expect_error([] { env::get_int("RANK"); }, ErrorCategory::kInvalidArgument, {"RANK", "'3x'"});
  }
  {
    ScopedEnv e({{"MASTER_ADDR", std::nullopt}});
    expect_error([] { env::get_string("MASTER_ADDR"); }, ErrorCategory::kInvalidArgument,
                 {"MASTER_ADDR", "is not set"});
  }
}

TEST(Env, UnregisteredOrMistypedReadsAreBugs) {
  expect_error([] { env::get_string("EPCOMM_NO_SUCH_VARIABLE"); }, ErrorCategory::kInternal,
               {"EPCOMM_NO_SUCH_VARIABLE", "not registered"});
  expect_error([] { env::is_set("HOME"); }, ErrorCategory::kInternal, {"HOME"});
  expect_error([] { env::get_int("EPCOMM_LOG"); }, ErrorCategory::kInternal, {"EPCOMM_LOG", "string"});
  expect_error([] { env::get_bool("RANK"); }, ErrorCategory::kInternal, {"RANK"});
}

TEST(Env, Parsers) {
  EXPECT_EQ(env::parse_int("X", "42"), 42);
  EXPECT_EQ(env::parse_int("X", "+7"), 7);
  EXPECT_EQ(env::parse_int("X", "-3"), -3);
  expect_error([] { env::parse_int("X", ""); }, ErrorCategory::kInvalidArgument, {"X", "''"});
  expect_error([] { env::parse_int("X", " 1"); }, ErrorCategory::kInvalidArgument, {"X"});
  expect_error([] { env::parse_int("X", "99999999999999999999"); }, ErrorCategory::kInvalidArgument,
               {"X", "out of range"});
  for (const char* t : {"1", "true", "YES", "On"}) EXPECT_TRUE(env::parse_bool("B", t)) << t;
  for (const char* t : {"0", "false", "no", "OFF"}) EXPECT_FALSE(env::parse_bool("B", t)) << t;
  expect_error([] { env::parse_bool("B", "maybe"); }, ErrorCategory::kInvalidArgument, {"B", "'maybe'"});
  EXPECT_EQ(env::parse_duration("D", "250"), std::chrono::milliseconds(250));
  EXPECT_EQ(env::parse_duration("D", "250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(env::parse_duration("D", "3s"), std::chrono::milliseconds(3000));
  EXPECT_EQ(env::parse_duration("D", "2m"), std::chrono::milliseconds(120000));
  for (const char* bad : {"", "s", "1.5s", "ms", "+", "10 s", "99999999999999999999"}) {
    EXPECT_THROW(env::parse_duration("D", bad), Error) << bad;
  }
}

TEST(Env, TcpBootstrapOptionsFromEnv) {
  {
    ScopedEnv e({{"MASTER_ADDR", "10.0.0.1"},
                 {"MASTER_PORT", "29501"},
                 {"RANK", "3"},
                 {"WORLD_SIZE", "8"},
                 {"EPCOMM_BOOTSTRAP_TIMEOUT_MS", "1234"}});
    const TcpBootstrapOptions o = tcp_bootstrap_options_from_env();
    EXPECT_EQ(o.master_addr, "10.0.0.1");
    EXPECT_EQ(o.master_port, 29501);
    EXPECT_EQ(o.rank, 3);
    EXPECT_EQ(o.world_size, 8);
    EXPECT_EQ(o.timeout, std::chrono::milliseconds(1234));
  }
  {
    ScopedEnv e(
        {{"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29501"}, {"RANK", std::nullopt}, {"WORLD_SIZE", "8"}});
    expect_error([] { tcp_bootstrap_options_from_env(); }, ErrorCategory::kInvalidArgument,
                 {"RANK", "not set"});
  }
  {
    ScopedEnv e({{"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29501"}, {"RANK", "4"}, {"WORLD_SIZE", "4"}});
    expect_error([] { tcp_bootstrap_options_from_env(); }, ErrorCategory::kInvalidArgument,
                 {"RANK=4", "WORLD_SIZE=4"});
  }
}

}  // namespace
// One sign at most (found by fuzz_env: "+-5" parsed as -5 while no duration accepted it).
TEST(Env, IntegerTakesOneSignAtMost) {
  EXPECT_EQ(env::parse_int("X", "+5"), 5);
  EXPECT_EQ(env::parse_int("X", "-5"), -5);
  EXPECT_THROW(env::parse_int("X", "+-5"), Error);
  EXPECT_THROW(env::parse_int("X", "++5"), Error);
  EXPECT_THROW(env::parse_int("X", "+"), Error);
}

}  // namespace epcomm
