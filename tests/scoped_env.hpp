// Environment variables set for one scope, for tests of what epcomm reads from the environment (a
// Buffer reads its variables when it is made): each change is undone when the scope ends, in
// reverse order, so a run of a whole test program under one of the variables keeps it.
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace epcomm::test {

// Sets (or, with nullopt, unsets) each variable; the destructor gives each its earlier value back
// (or unsets it).
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, std::optional<std::string>>> changes) {
    for (const auto& [name, value] : changes) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
      apply(name, value);
    }
  }
  ScopedEnv(const char* name, std::optional<std::string> value) : ScopedEnv({{name, std::move(value)}}) {}
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) apply(it->first, it->second);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  static void apply(const std::string& name, const std::optional<std::string>& value) {
    if (value)
      ::setenv(name.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace epcomm::test
