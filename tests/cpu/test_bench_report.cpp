// epcomm-bench's results (tools/bench/report.hpp): JSON escaping and the docs/benchmark.md shape (parsed
// back), the table, CSV, the NCCL comparison, the efficiency gate and output paths.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/report.hpp"

namespace epcomm::bench {
namespace {

// ---- a minimal JSON reader, enough to prove the output parses and has the right shape ----------

struct Json {
  enum Kind { kNull, kNumber, kString, kArray, kObject, kBool } kind = kNull;
  double number = 0;
  bool boolean = false;
  std::string text;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;  // in file order

  const Json& at(const std::string& key) const {
    for (const auto& [k, v] : fields)
      if (k == key) return v;
    throw std::runtime_error("no key " + key);
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& f : fields) out.push_back(f.first);
    return out;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& s) : s_(s) {}
  Json document() {
    Json v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at " + std::to_string(i_));
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool take(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      const char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = s_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const unsigned code = std::stoul(s_.substr(i_, 4), nullptr, 16);
          if (code >= 0x80) fail("only ASCII \\u escapes are expected");
          out += static_cast<char>(code);
          i_ += 4;
          break;
        }
        default:
          fail("bad escape");
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  Json value() {
    skip();
    Json v;
    if (i_ >= s_.size()) fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') {
      v.kind = Json::kObject;
      ++i_;
      if (take('}')) return v;
      do {
        skip();
        std::string key = string();
        expect(':');
        v.fields.emplace_back(std::move(key), value());
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      v.kind = Json::kArray;
      ++i_;
      if (take(']')) return v;
      do v.items.push_back(value());
      while (take(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Json::kString;
      v.text = string();
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::kBool;
      v.boolean = s_[i_] == 't';
      i_ += v.boolean ? 4 : 5;
    } else {
      size_t used = 0;
      v.kind = Json::kNumber;
      v.number = std::stod(s_.substr(i_), &used);
      i_ += used;
    }
    return v;
  }
  const std::string& s_;
  size_t i_ = 0;
};

Json parse(const std::string& s) {
  return JsonReader(s).document();
}

ResultRow row(const std::string& impl, const std::string& op, const std::string& dtype, double time_us,
              int64_t tokens = 4096) {
  ResultRow r;
  r.impl = impl;
  r.op = op;
  r.dtype = dtype;
  r.tokens = tokens;
  r.hidden = 7168;
  r.time_us = time_us;
  return r;
}

RunReport sample_report() {
  RunReport r;
  r.workload = "ht-dsv3";
  r.card = "NVIDIA H200";
  r.num_gpus = 2;
  r.commit = "0123abcd";
  r.date = "2026-11-30";
  r.command = "epcomm-bench --json \"out dir\\x.json\"\tend";
  r.ceiling_gbps = 355.0;
  r.ceiling_one_way_gbps = 394.0;
  r.warmup = 10;
  r.iters = 50;
  ResultRow nccl = row("nccl", "dispatch", "bf16", 548.25);
  nccl.logical_gbps = 213.5;
  nccl.wire_gbps = 106.7;
  nccl.efficiency = 0.3006;
  nccl.check = "pass";
  ResultRow mine = row("epcomm", "dispatch", "bf16", 200.0);
  mine.num_sms = 24;
  mine.kernel_us = 190.5;
  mine.preamble_us = 21.5;
  mine.preamble_split_us = 24.25;
  mine.preamble_span_us = 12.5;
  mine.batch_us = 195.5;
  mine.host_us = 6.25;
  mine.check = "fail";
  r.rows = {nccl, mine};
  fill_nccl_comparison(r.rows);
  return r;
}

TEST(BenchReport, JsonEscape) {
  EXPECT_EQ(json_escape("plain"), "plain");
  EXPECT_EQ(json_escape("a\"b"), "a\\\"b");
  EXPECT_EQ(json_escape("a\\b"), "a\\\\b");
  EXPECT_EQ(json_escape("l1\nl2\r\t"), "l1\\nl2\\r\\t");
  EXPECT_EQ(json_escape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(json_escape("\b\f"), "\\b\\f");
  EXPECT_EQ(json_escape("H200 \xc3\xa9"), "H200 \xc3\xa9");  // UTF-8 passes through
}

TEST(BenchReport, JsonNumber) {
  EXPECT_EQ(json_number(355.0), "355.0");
  EXPECT_EQ(json_number(0.0), "0.0");
  EXPECT_EQ(json_number(0.48123456), "0.4812");
  EXPECT_EQ(json_number(548.25), "548.25");
  EXPECT_EQ(json_number(-0.00001), "0.0");
  EXPECT_EQ(json_number(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(json_number(std::numeric_limits<double>::infinity()), "null");
}

TEST(BenchReport, JsonHasTheBenchMdShape) {
  const RunReport report = sample_report();
  const Json doc = parse(to_json(report));
  ASSERT_EQ(doc.kind, Json::kObject);
  EXPECT_EQ(doc.keys(), (std::vector<std::string>{"workload", "card", "num_gpus", "shared_gpus", "commit",
                                                  "date", "command", "ceiling_gbps", "rows"}));
  EXPECT_EQ(doc.at("shared_gpus").kind, Json::kBool);
  EXPECT_FALSE(doc.at("shared_gpus").boolean);
  EXPECT_EQ(doc.at("workload").text, "ht-dsv3");
  EXPECT_EQ(doc.at("card").text, "NVIDIA H200");
  EXPECT_EQ(doc.at("num_gpus").number, 2);
  EXPECT_EQ(doc.at("commit").text, "0123abcd");
  EXPECT_EQ(doc.at("date").text, "2026-11-30");
  EXPECT_EQ(doc.at("command").text, report.command);  // escaping round-trips
  EXPECT_EQ(doc.at("ceiling_gbps").number, 355.0);

  const Json& rows = doc.at("rows");
  ASSERT_EQ(rows.kind, Json::kArray);
  ASSERT_EQ(rows.items.size(), 2u);
  const std::vector<std::string> row_keys = {
      "impl",    "op",           "dtype",       "num_sms",           "tokens",           "hidden",
      "time_us", "kernel_us",    "preamble_us", "preamble_split_us", "preamble_span_us", "batch_us",
      "host_us", "logical_gbps", "wire_gbps",   "efficiency",        "nccl_time_us",     "speedup_vs_nccl",
      "check",   "shared_gpus"};
  for (const Json& r : rows.items) EXPECT_EQ(r.keys(), row_keys);
  const Json& nccl = rows.items[0];
  EXPECT_EQ(nccl.at("impl").text, "nccl");
  EXPECT_EQ(nccl.at("op").text, "dispatch");
  EXPECT_EQ(nccl.at("dtype").text, "bf16");
  EXPECT_EQ(nccl.at("tokens").number, 4096);
  EXPECT_EQ(nccl.at("hidden").number, 7168);
  EXPECT_EQ(nccl.at("time_us").number, 548.25);
  EXPECT_EQ(nccl.at("kernel_us").kind, Json::kNull);
  EXPECT_EQ(nccl.at("efficiency").number, 0.3006);
  EXPECT_EQ(nccl.at("speedup_vs_nccl").number, 1.0);
  EXPECT_EQ(nccl.at("check").text, "pass");
  const Json& mine = rows.items[1];
  EXPECT_EQ(mine.at("num_sms").number, 24);
  EXPECT_EQ(mine.at("kernel_us").number, 190.5);
  EXPECT_EQ(mine.at("preamble_us").number, 21.5);
  EXPECT_EQ(mine.at("preamble_split_us").number, 24.25);
  EXPECT_EQ(nccl.at("preamble_split_us").kind, Json::kNull);
  EXPECT_EQ(mine.at("preamble_span_us").number, 12.5);
  EXPECT_EQ(nccl.at("preamble_span_us").kind, Json::kNull);
  EXPECT_EQ(nccl.at("preamble_us").kind, Json::kNull);  // not a high-throughput dispatch of epcomm
  EXPECT_EQ(mine.at("batch_us").number, 195.5);
  EXPECT_EQ(mine.at("host_us").number, 6.25);
  EXPECT_EQ(nccl.at("host_us").kind, Json::kNull);
  EXPECT_FALSE(mine.at("shared_gpus").boolean);
  EXPECT_EQ(mine.at("nccl_time_us").number, 548.25);
  EXPECT_NEAR(mine.at("speedup_vs_nccl").number, 548.25 / 200.0, 1e-4);
  EXPECT_EQ(mine.at("check").text, "fail");
}

TEST(BenchReport, EmptyRowsStillParse) {
  RunReport report = sample_report();
  report.rows.clear();
  const Json doc = parse(to_json(report));
  EXPECT_EQ(doc.at("rows").kind, Json::kArray);
  EXPECT_TRUE(doc.at("rows").items.empty());
}

TEST(BenchReport, NcclComparison) {
  std::vector<ResultRow> rows = {
      row("nccl", "dispatch", "bf16", 500),       row("nccl", "combine", "bf16", 800),
      row("epcomm", "dispatch", "bf16", 100),     row("epcomm", "dispatch", "fp8", 90),
      row("epcomm", "dispatch", "bf16", 50, 128), row("nccl-a2av", "dispatch", "bf16", 250)};
  fill_nccl_comparison(rows);
  EXPECT_EQ(*rows[0].speedup_vs_nccl, 1.0);
  EXPECT_EQ(*rows[1].nccl_time_us, 800);
  EXPECT_EQ(*rows[2].nccl_time_us, 500);
  EXPECT_EQ(*rows[2].speedup_vs_nccl, 5.0);
  EXPECT_FALSE(rows[3].nccl_time_us.has_value());  // no NCCL fp8 row
  EXPECT_FALSE(rows[4].nccl_time_us.has_value());  // other token count
  EXPECT_EQ(*rows[5].speedup_vs_nccl, 2.0);
}

TEST(BenchReport, EfficiencyGateLooksAtEpcommRowsOnly) {
  std::vector<ResultRow> rows = {row("nccl", "dispatch", "bf16", 500), row("epcomm", "dispatch", "bf16", 100),
                                 row("epcomm", "combine", "bf16", 100)};
  rows[0].efficiency = 0.1;
  rows[1].efficiency = 0.8;
  rows[2].efficiency = 0.5;
  const auto below = rows_below_efficiency(rows, 0.6);
  ASSERT_EQ(below.size(), 1u);
  EXPECT_EQ(below[0].op, "combine");
  EXPECT_TRUE(rows_below_efficiency(rows, 0.5).empty());
}

// The summary names, per op, dtype and SM budget, the fastest of epcomm's variants; a group with a
// failed check is not summarised (a wrong answer is not a result).
TEST(BenchReport, FastestVariantPerGroup) {
  std::vector<ResultRow> rows = {
      row("nccl", "combine", "bf16", 100),
      row("epcomm", "combine", "bf16", 300),
      row("epcomm-pull", "combine", "bf16", 250),
      row("epcomm-pull-ce", "combine", "bf16", 210),
      row("epcomm", "dispatch", "bf16", 330),
      row("epcomm-zc", "dispatch", "bf16", 280),
      row("epcomm", "dispatch", "fp8", 230),
      row("epcomm-zc", "dispatch", "fp8", 190),
      row("epcomm-cached", "dispatch", "bf16", 200),      // faster, but not a whole call
      row("epcomm-ce-cached", "dispatch", "bf16", 190)};  // nor this
  for (ResultRow& r : rows) {
    r.num_sms = r.impl == "nccl" ? 0 : 24;
    r.check = "pass";
  }
  rows.push_back(row("epcomm", "combine", "bf16", 150));  // another budget: its own group
  rows.back().num_sms = 64;
  rows[7].check = "fail";  // FP8 zero-copy failed: no FP8 summary
  fill_nccl_comparison(rows);
  const std::vector<ResultRow> fastest = fastest_epcomm_rows(rows);
  ASSERT_EQ(fastest.size(), 3u);
  EXPECT_EQ(fastest[0].impl, "epcomm-pull-ce");
  EXPECT_EQ(fastest[0].op, "combine");
  EXPECT_EQ(fastest[1].impl, "epcomm-zc");
  EXPECT_EQ(fastest[1].op, "dispatch");
  EXPECT_EQ(fastest[2].num_sms, 64);
  const std::string text = format_fastest(fastest);
  EXPECT_NE(
      text.find("# fastest: combine bf16 sms 24 tokens 4096: epcomm-pull-ce 210.0 us, efficiency 0.000, "
                "0.48x NCCL"),
      std::string::npos)
      << text;
  EXPECT_EQ(text.find("nccl"), std::string::npos) << text;  // the baseline is never a variant
}

// A variant that threw has no time: it is never the fastest, and the others still are summarised.
TEST(BenchReport, AVariantThatThrewIsNeitherFastestNorAFailure) {
  std::vector<ResultRow> rows = {row("epcomm", "combine", "bf16", 300),
                                 row("epcomm-push-ce", "combine", "bf16", 0),
                                 row("epcomm-pull-ce", "combine", "bf16", 210)};
  for (ResultRow& r : rows) {
    r.num_sms = 24;
    r.check = "pass";
  }
  rows[1].check = "error";
  const std::vector<ResultRow> fastest = fastest_epcomm_rows(rows);
  ASSERT_EQ(fastest.size(), 1u);
  EXPECT_EQ(fastest[0].impl, "epcomm-pull-ce");
}

// The preamble's method is on every table: with a hold, its events time the device; without, the
// host's launch latency too.
TEST(BenchReport, TableSaysHowThePreambleWasTimed) {
  RunReport report = sample_report();
  report.preamble_hold_us = 200;
  EXPECT_NE(format_table(report).find("queued behind a 200 us hold"), std::string::npos);
  report.preamble_hold_us = 0;
  EXPECT_NE(format_table(report).find("queued behind a 0 us hold of the stream (0: none"), std::string::npos);
}

TEST(BenchReport, TableAndCsv) {
  const RunReport report = sample_report();
  const std::string table = format_table(report);
  EXPECT_NE(table.find("workload ht-dsv3"), std::string::npos);
  EXPECT_NE(table.find("355.0 GB/s"), std::string::npos);
  EXPECT_NE(table.find("548.2"), std::string::npos);
  EXPECT_NE(table.find("logical_GB/s"), std::string::npos);

  const std::string header = csv_header();
  const std::string rows = to_csv_rows(report);
  const auto count_fields = [](const std::string& line) {
    int fields = 1;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++fields;
    }
    return fields;
  };
  const int columns = count_fields(header.substr(0, header.find('\n')));
  EXPECT_EQ(columns, 29);
  EXPECT_NE(header.find(",kernel_us,preamble_us,"), std::string::npos) << header;
  size_t begin = 0;
  int lines = 0;
  for (size_t end; (end = rows.find('\n', begin)) != std::string::npos; begin = end + 1, ++lines)
    EXPECT_EQ(count_fields(rows.substr(begin, end - begin)), columns);
  EXPECT_EQ(lines, 2);
}

// Issue 23: the preamble (layout + notify kernels) has a column of its own; "-" where not measured.
TEST(BenchReport, TableShowsThePreamble) {
  const RunReport report = sample_report();
  const std::string table = format_table(report);
  EXPECT_NE(table.find("preamble_us"), std::string::npos) << table;
  EXPECT_NE(table.find(" 190.5        21.5 "), std::string::npos) << table;  // kernel_us, then preamble_us
  EXPECT_NE(to_csv_rows(report).find(",190.5,21.5,"), std::string::npos) << to_csv_rows(report);
}

// Issue 23: a run whose ranks shared GPUs says so on every row of the JSON, the table and the CSV;
// a run that did not says nothing of it in the table.
TEST(BenchReport, SharedGpuRunsAreStampedOnEveryRow) {
  RunReport report = sample_report();
  EXPECT_EQ(format_table(report).find(kSharedGpuNote), std::string::npos);
  report.shared_gpus = true;
  const Json doc = parse(to_json(report));
  EXPECT_TRUE(doc.at("shared_gpus").boolean);
  ASSERT_EQ(doc.at("rows").items.size(), 2u);
  for (const Json& row : doc.at("rows").items) EXPECT_TRUE(row.at("shared_gpus").boolean);

  const std::string table = format_table(report);
  std::size_t stamped = 0;
  for (std::size_t at = table.find(kSharedGpuNote); at != std::string::npos;
       at = table.find(kSharedGpuNote, at + 1))
    ++stamped;
  EXPECT_EQ(stamped, report.rows.size() + 1) << table;  // each row, and the header's note
  EXPECT_NE(table.find("not NVLink timing"), std::string::npos) << table;

  const std::string csv = to_csv_rows(report);
  EXPECT_EQ(csv.find("ht-dsv3,NVIDIA H200,2,true,"), 0u) << csv;
}

TEST(BenchReport, OutputPaths) {
  EXPECT_EQ(output_path_for("r.json", "ht-dsv3", false), "r.json");
  EXPECT_EQ(output_path_for("r.json", "ht-dsv3", true), "r-ht-dsv3.json");
  EXPECT_EQ(output_path_for("bench/results/2026-11-30-h200-{workload}.json", "ll-small", true),
            "bench/results/2026-11-30-h200-ll-small.json");
  EXPECT_EQ(output_path_for("out.d/r", "ht-skew", true), "out.d/r-ht-skew");
  EXPECT_EQ(output_path_for("dir/.hidden", "x", true), "dir/.hidden-x");
}

TEST(BenchReport, RunFacts) {
  EXPECT_EQ(commit_id("feedbeef"), "feedbeef");
  EXPECT_FALSE(commit_id("").empty());
  const std::string date = utc_date_today();
  ASSERT_EQ(date.size(), 10u);
  EXPECT_EQ(date[4], '-');
  EXPECT_EQ(date[7], '-');
  const char* argv[] = {"epcomm-bench", "--workload", "ht-dsv3", "--json", "my file.json", "it's"};
  EXPECT_EQ(join_command(6, argv), "epcomm-bench --workload ht-dsv3 --json 'my file.json' 'it'\\''s'");
}

}  // namespace
}  // namespace epcomm::bench
