#include "faults/json_writer.hpp"

#include <cmath>
#include <cstdio>

namespace epcomm::faults {

void JsonWriter::key_prefix(const std::string& key) {
  if (!first_.empty()) {
    if (!first_.back()) out_ += ",";
    first_.back() = false;
  }
  if (!key.empty()) out_ += json_quote(key) + ":";
}

JsonWriter& JsonWriter::begin_object(const std::string& key) {
  key_prefix(key);
  out_ += "{";
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  first_.pop_back();
  out_ += "}";
  return *this;
}

JsonWriter& JsonWriter::begin_array(const std::string& key) {
  key_prefix(key);
  out_ += "[";
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  first_.pop_back();
  out_ += "]";
  return *this;
}

JsonWriter& JsonWriter::field(const std::string& key, const std::string& value) {
  key_prefix(key);
  out_ += json_quote(value);
  return *this;
}

JsonWriter& JsonWriter::field(const std::string& key, bool value) {
  key_prefix(key);
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::field(const std::string& key, std::int64_t value) {
  key_prefix(key);
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::field(const std::string& key, double value) {
  key_prefix(key);
  if (!std::isfinite(value)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", value);
  out_ += buf;
  return *this;
}

JsonWriter& JsonWriter::string_array(const std::string& key, const std::vector<std::string>& values) {
  begin_array(key);
  for (const auto& v : values) field("", v);
  return end_array();
}

}  // namespace epcomm::faults
