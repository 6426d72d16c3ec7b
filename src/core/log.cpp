#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>

#include "epcomm/error.hpp"
#include "core/env.hpp"

namespace epcomm::log {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_level{kUnset};  // a Level, or kUnset before the first use
std::atomic<int> g_rank{kUnset};
std::mutex g_write_mutex;  // one writer at a time, so a line is one uninterrupted write

void write_all(const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = ::write(STDERR_FILENO, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: nothing better to do in a logger
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

const char* to_string(Level level) noexcept {
  switch (level) {
    case Level::kOff:
      return "off";
    case Level::kError:
      return "error";
    case Level::kWarn:
      return "warn";
    case Level::kInfo:
      return "info";
    case Level::kDebug:
      return "debug";
  }
  return "unknown";
}

std::optional<Level> parse_level(std::string_view text) noexcept {
  for (Level l : {Level::kOff, Level::kError, Level::kWarn, Level::kInfo, Level::kDebug}) {
    if (text == to_string(l)) return l;
  }
  return std::nullopt;
}

Level level_from_env() noexcept {
  try {
    if (auto parsed = parse_level(env::get_string("EPCOMM_LOG"))) return *parsed;
  } catch (const Error& e) {
    write(Level::kWarn, e.message() + "; using warn");
  } catch (...) {
    write(Level::kWarn, "EPCOMM_LOG could not be read; using warn");
  }
  return Level::kWarn;
}

Level level() noexcept {
  int current = g_level.load(std::memory_order_relaxed);
  if (current == kUnset) {
    int from_env = static_cast<int>(level_from_env());
    // A concurrent set_level() or first use wins; keep what is stored then.
    if (g_level.compare_exchange_strong(current, from_env, std::memory_order_relaxed)) current = from_env;
  }
  return static_cast<Level>(current);
}

void set_level(Level level) noexcept {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void set_rank(int rank) noexcept {
  g_rank.store(rank, std::memory_order_relaxed);
}

void write(Level level, std::string_view message) noexcept {
  const int rank = g_rank.load(std::memory_order_relaxed);
  try {
    std::string line = "[epcomm rank ";
    line += rank == kUnset ? std::string("?") : std::to_string(rank);
    line += "] ";
    line += to_string(level);
    line += ": ";
    line += message;
    line += '\n';
    std::lock_guard<std::mutex> lock(g_write_mutex);
    write_all(line.data(), line.size());
  } catch (...) {
    // Out of memory or a broken mutex: write the message bare rather than nothing.
    write_all(message.data(), message.size());
    write_all("\n", 1);
  }
}

}  // namespace epcomm::log
