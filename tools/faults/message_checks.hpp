// Does an error message say what a survivor needs to act on it: the peer, the operation, and what was
// awaited (a timeout) or what differs (a mismatch)? Plain string checks, CPU-tested.
#pragma once

#include <string>
#include <vector>

namespace epcomm::faults {

struct MessageFacts {
  bool names_peer = false;     // "rank P" as a whole number (not "rank 10" for P = 1)
  bool names_op = false;       // one of the operation's names
  bool names_awaited = false;  // one of the awaited counter's / differing field's words
};

// True when `message` names rank `peer`: "rank P" or "ranks ..., P" not followed by a digit.
bool names_rank(const std::string& message, int peer);
// True when `message` contains any of `words` (none given: false).
bool contains_any(const std::string& message, const std::vector<std::string>& words);

MessageFacts message_facts(const std::string& message, int peer, const std::vector<std::string>& op_words,
                           const std::vector<std::string>& awaited_words);

}  // namespace epcomm::faults
