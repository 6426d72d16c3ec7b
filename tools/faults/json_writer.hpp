// A small streaming JSON writer for the fault and soak reports: objects, arrays, strings (escaped),
// numbers and booleans, with commas placed for the caller. Host code, CPU-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_quote.hpp"

namespace epcomm::faults {

// The JSON spelling of a string with its quotes (common/json_quote.hpp, shared with the benchmark).
using tools::json_quote;

class JsonWriter {
 public:
  JsonWriter& begin_object(const std::string& key = {});
  JsonWriter& end_object();
  JsonWriter& begin_array(const std::string& key = {});
  JsonWriter& end_array();
  JsonWriter& field(const std::string& key, const std::string& value);
  JsonWriter& field(const std::string& key, const char* value) { return field(key, std::string(value)); }
  JsonWriter& field(const std::string& key, bool value);
  JsonWriter& field(const std::string& key, std::int64_t value);
  JsonWriter& field(const std::string& key, int value) { return field(key, std::int64_t{value}); }
  // A non-finite double is written as null (JSON has no NaN).
  JsonWriter& field(const std::string& key, double value);
  JsonWriter& string_array(const std::string& key, const std::vector<std::string>& values);
  // The text so far; complete once every begin has its end.
  const std::string& text() const { return out_; }

 private:
  void key_prefix(const std::string& key);
  std::string out_;
  std::vector<bool> first_;  // per open container: no member written yet
};

}  // namespace epcomm::faults
