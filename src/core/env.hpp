// The environment registry: the ONE place epcomm reads environment variables.
//
// Every variable epcomm reads (its own EPCOMM_* and torchrun's rendezvous variables) is an entry
// of one table: name, type, default, accepted range or choices, and a one-line doc. Getters parse
// and check the value on every call (no caching, so tests may setenv between calls) and throw
// epcomm::Error(kInvalidArgument) naming the variable and the bad value. Asking for a name that is
// not in the table is a bug in epcomm and throws epcomm::Error(kInternal).
//
// An empty value counts as unset.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace epcomm::env {

enum class Type {
  kInt,       // a decimal integer within [min_value, max_value]
  kBool,      // 1|0, true|false, yes|no, on|off (any case)
  kString,    // free text, or one of `choices` when that is not empty
  kDuration,  // an integer with an optional unit: "250" or "250ms" (milliseconds), "3s", "2m"
};
const char* to_string(Type type) noexcept;

struct Entry {
  std::string_view name;
  Type type;
  // nullopt: the variable has no default and a getter throws when it is unset (see is_set()).
  std::optional<std::string_view> default_value;
  std::string_view doc;
  std::string_view choices = {};  // kString only: accepted values separated by '|'
  std::int64_t min_value =
      std::numeric_limits<std::int64_t>::min();  // kInt and kDuration (in milliseconds): inclusive bounds
  std::int64_t max_value = std::numeric_limits<std::int64_t>::max();
};

// The whole table, in documentation order (for the README and epcomm-doctor).
std::span<const Entry> registry() noexcept;
// The entry named `name`; throws kInternal when it is not registered.
const Entry& entry(std::string_view name);
// The table as Markdown (name | type | default | meaning), one row per entry.
std::string registry_markdown();

// True when the registered variable is set to a non-empty value.
bool is_set(std::string_view name);
// The raw value, or nullopt when unset or empty. Does not apply the default.
std::optional<std::string> raw(std::string_view name);

// Typed getters: the value when set, else the default; throw kInvalidArgument when the value is
// malformed or out of range, or when it is unset and has no default. Calling a getter of the
// wrong type for the entry throws kInternal (get_int also serves kDuration entries, in ms).
std::string get_string(std::string_view name);
std::int64_t get_int(std::string_view name);
bool get_bool(std::string_view name);
std::chrono::milliseconds get_duration(std::string_view name);

// The parsers behind the getters; `name` only labels the error message.
std::int64_t parse_int(std::string_view name, std::string_view text);
bool parse_bool(std::string_view name, std::string_view text);
std::chrono::milliseconds parse_duration(std::string_view name, std::string_view text);

}  // namespace epcomm::env
