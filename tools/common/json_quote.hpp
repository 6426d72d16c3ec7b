// JSON string spelling for the tools' reports (the benchmark's result file, the fault and soak
// reports): one implementation, so both write the same escapes. Plain C++, CPU-tested through
// tests/cpu/test_bench_report.cpp and tests/cpu/test_faults_report.cpp.
#pragma once

#include <string>
#include <string_view>

namespace epcomm::tools {

// The contents of a JSON string for `text`, without quotes: " and \ escaped, \b \f \n \r \t by
// their short escapes, other control characters as \u00XX; UTF-8 bytes pass through unchanged.
std::string json_escape(std::string_view text);

// json_escape(text) between double quotes: a complete JSON string.
std::string json_quote(std::string_view text);

}  // namespace epcomm::tools
