#include "common/json_quote.hpp"

#include <cstdio>

namespace epcomm::tools {

namespace {

// The two-character escape of `c`, or nullptr where it has none.
const char* short_escape(char c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default:
      return nullptr;
  }
}

}  // namespace

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (const char* escape = short_escape(c)) {
      out += escape;
    } else if (byte < 0x20) {  // JSON allows no raw control character inside a string
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(byte));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string json_quote(std::string_view text) {
  std::string out(1, '"');  // built piecewise: GCC 12 warns (-Wrestrict) on "\"" + std::string
  out += json_escape(text);
  out += '"';
  return out;
}

}  // namespace epcomm::tools
