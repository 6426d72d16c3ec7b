#include "faults/message_checks.hpp"

#include <cctype>

namespace epcomm::faults {

namespace {

bool digit_at(const std::string& s, std::size_t i) {
  return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]));
}

}  // namespace

bool names_rank(const std::string& message, int peer) {
  const std::string number = std::to_string(peer);
  // A rank list ("ranks 0-2, 5") names a peer inside a range too rarely to matter for two ranks;
  // look for the number right after "rank " / "ranks " or after a list separator that follows one.
  for (std::size_t at = message.find("rank"); at != std::string::npos; at = message.find("rank", at + 1)) {
    std::size_t i = at + 4;
    if (i < message.size() && message[i] == 's') ++i;
    while (i < message.size() && message[i] == ' ') {
      ++i;
      if (message.compare(i, number.size(), number) == 0 && !digit_at(message, i + number.size()) &&
          (i == 0 || !digit_at(message, i - 1)))
        return true;
      // Skip one list element ("0, " or "0-2, ") and look at the next.
      while (digit_at(message, i) || (i < message.size() && message[i] == '-')) ++i;
      if (i < message.size() && message[i] == ',')
        ++i;
      else
        break;
    }
  }
  return false;
}

bool contains_any(const std::string& message, const std::vector<std::string>& words) {
  for (const auto& w : words)
    if (!w.empty() && message.find(w) != std::string::npos) return true;
  return false;
}

MessageFacts message_facts(const std::string& message, int peer, const std::vector<std::string>& op_words,
                           const std::vector<std::string>& awaited_words) {
  return {names_rank(message, peer), contains_any(message, op_words), contains_any(message, awaited_words)};
}

}  // namespace epcomm::faults
