// The one leveled logger of epcomm. Host code only.
//
//   EPCOMM_LOG_INFO("buffer: mapped ", num_peers, " peers, ", bytes, " bytes each");
//
// writes "[epcomm rank 3] info: buffer: mapped 7 peers, 1048576 bytes each\n" to stderr when the
// threshold (EPCOMM_LOG, default warn) admits info. The message parts are streamed (operator<<)
// only when the level is enabled. Logging is thread-safe (one write(2) per line, so lines of
// threads and processes sharing stderr do not interleave) and never throws.
#pragma once

#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

namespace epcomm::log {

enum class Level { kOff = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

const char* to_string(Level level) noexcept;
// "off|error|warn|info|debug" -> Level; nullopt for anything else.
std::optional<Level> parse_level(std::string_view text) noexcept;

// The threshold from EPCOMM_LOG (through the env registry). A malformed value yields kWarn and
// one warning on stderr. Read once, on the first use of the logger, unless set_level() came first.
Level level_from_env() noexcept;
Level level() noexcept;
void set_level(Level level) noexcept;
inline bool enabled(Level lvl) noexcept {
  return lvl != Level::kOff && lvl <= level();
}

// The rank printed in the prefix; "?" until set. Set once per process, after the bootstrap.
void set_rank(int rank) noexcept;

// Writes one line with the prefix, whatever the threshold. Prefer the macros.
void write(Level level, std::string_view message) noexcept;

namespace detail {
template <typename... Parts>
void emit(Level level, Parts&&... parts) noexcept {
  try {
    std::ostringstream os;
    (os << ... << std::forward<Parts>(parts));
    write(level, os.str());
  } catch (...) {
    write(level, "(log message could not be formatted)");
  }
}
}  // namespace detail

}  // namespace epcomm::log

#define EPCOMM_LOG_AT(level, ...)                                                         \
  do {                                                                                    \
    if (::epcomm::log::enabled(level)) ::epcomm::log::detail::emit((level), __VA_ARGS__); \
  } while (0)

#define EPCOMM_LOG_ERROR(...) EPCOMM_LOG_AT(::epcomm::log::Level::kError, __VA_ARGS__)
#define EPCOMM_LOG_WARN(...) EPCOMM_LOG_AT(::epcomm::log::Level::kWarn, __VA_ARGS__)
#define EPCOMM_LOG_INFO(...) EPCOMM_LOG_AT(::epcomm::log::Level::kInfo, __VA_ARGS__)
#define EPCOMM_LOG_DEBUG(...) EPCOMM_LOG_AT(::epcomm::log::Level::kDebug, __VA_ARGS__)
