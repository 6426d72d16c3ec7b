#include "bench/report.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "bench/require.hpp"

#ifndef EPCOMM_BENCH_GIT_COMMIT
#define EPCOMM_BENCH_GIT_COMMIT ""
#endif

namespace epcomm::bench {

namespace {

std::string json_bool(bool value) {
  return value ? "true" : "false";
}

std::string json_optional(const std::optional<double>& value) {
  return value ? json_number(*value) : std::string("null");
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string table_optional(const std::optional<double>& value, int decimals) {
  return value && std::isfinite(*value) ? fixed(*value, decimals) : std::string("-");
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_optional(const std::optional<double>& value) {
  return value && std::isfinite(*value) ? json_number(*value) : std::string();
}

// The multi-domain columns of a row (a leading comma each), empty for other runs.
std::string csv_md_fields(const std::optional<MdRunInfo>& info, const ResultRow& w) {
  if (!info || !w.multi_domain) return ",,,,,,,";
  const MdRowFields& m = *w.multi_domain;
  std::ostringstream os;
  os << ',' << info->ranks_per_domain << ',' << info->num_domains << ',' << json_number(info->nic_gbps) << ','
     << json_number(m.nic_sent_bytes) << ',' << json_number(m.nic_recv_bytes) << ','
     << json_number(m.nvl_bytes) << ',' << json_number(m.nic_floor_us);
  return os.str();
}

// A timed quantity of a row: null (JSON) where the row was not timed.
std::string json_timed(const ResultRow& row, double value) {
  return row.timed ? json_number(value) : std::string("null");
}

// The multi-domain fields of a row of `info`'s run, as JSON members (a leading ",\n"), or nothing.
std::string json_md_row(const std::optional<MdRunInfo>& info, const ResultRow& w) {
  if (!info || !w.multi_domain) return "";
  const MdRowFields& m = *w.multi_domain;
  std::ostringstream os;
  os << ",\n     \"ranks_per_domain\": " << info->ranks_per_domain << ", \"domains\": " << info->num_domains
     << ", \"nic_sent_bytes\": " << json_number(m.nic_sent_bytes)
     << ", \"nic_recv_bytes\": " << json_number(m.nic_recv_bytes)
     << ", \"nvl_bytes\": " << json_number(m.nvl_bytes)
     << ", \"nic_floor_us\": " << json_number(m.nic_floor_us);
  return os.str();
}

}  // namespace

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  std::string s = fixed(value, 4);
  // Trim trailing zeros but keep one decimal: 355.0000 -> 355.0, 0.4810 -> 0.481.
  while (s.size() > 2 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  if (s == "-0.0") s = "0.0";
  return s;
}

std::string to_json(const RunReport& r) {
  std::ostringstream os;
  os << "{\n";
  os << "  \"workload\": " << json_quote(r.workload) << ", \"card\": " << json_quote(r.card)
     << ", \"num_gpus\": " << r.num_gpus << ", \"shared_gpus\": " << json_bool(r.shared_gpus)
     << ", \"commit\": " << json_quote(r.commit) << ",\n";
  os << "  \"date\": " << json_quote(r.date) << ", \"command\": " << json_quote(r.command) << ",\n";
  os << "  \"ceiling_gbps\": " << json_number(r.ceiling_gbps) << ",\n";
  if (r.multi_domain)
    os << "  \"ranks_per_domain\": " << r.multi_domain->ranks_per_domain
       << ", \"domains\": " << r.multi_domain->num_domains
       << ", \"nic_gbps\": " << json_number(r.multi_domain->nic_gbps)
       << ", \"correctness_only\": " << json_bool(r.multi_domain->correctness_only) << ",\n";
  os << "  \"rows\": [";
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const ResultRow& w = r.rows[i];
    os << (i == 0 ? "\n" : ",\n");
    os << "    {\"impl\": " << json_quote(w.impl) << ", \"op\": " << json_quote(w.op)
       << ", \"dtype\": " << json_quote(w.dtype) << ", \"num_sms\": " << w.num_sms << ", \"tokens\": " << w.tokens
       << ", \"hidden\": " << w.hidden << ",\n";
    os << "     \"time_us\": " << json_timed(w, w.time_us)
       << ", \"kernel_us\": " << json_optional(w.kernel_us)
       << ", \"preamble_us\": " << json_optional(w.preamble_us)
       << ", \"preamble_split_us\": " << json_optional(w.preamble_split_us)
       << ", \"preamble_span_us\": " << json_optional(w.preamble_span_us)
       << ", \"batch_us\": " << json_optional(w.batch_us) << ", \"host_us\": " << json_optional(w.host_us)
       << ", \"logical_gbps\": " << json_timed(w, w.logical_gbps)
       << ", \"wire_gbps\": " << json_timed(w, w.wire_gbps)
       << ", \"efficiency\": " << json_timed(w, w.efficiency) << json_md_row(r.multi_domain, w) << ",\n";
    os << "     \"nccl_time_us\": " << json_optional(w.nccl_time_us)
       << ", \"speedup_vs_nccl\": " << json_optional(w.speedup_vs_nccl) << ", \"check\": " << json_quote(w.check)
       << ", \"shared_gpus\": " << json_bool(r.shared_gpus);
    if (w.telemetry) os << ",\n     \"telemetry\": " << telemetry_json(*w.telemetry);
    os << "}";
  }
  os << (r.rows.empty() ? "]\n" : "\n  ]\n");
  os << "}\n";
  return os.str();
}

std::string format_run_telemetry(const RunReport& r) {
  std::string out;
  for (const ResultRow& w : r.rows) {
    if (!w.telemetry) continue;
    out += format_telemetry(w.impl + " " + w.op + " " + w.dtype + " " + std::to_string(w.num_sms) + " SMs " +
                                std::to_string(w.tokens) + " tokens",
                            *w.telemetry);
  }
  return out;
}

std::string format_table(const RunReport& r) {
  std::ostringstream os;
  os << "# epcomm-bench  workload " << r.workload << "  card " << r.card << "  gpus " << r.num_gpus
     << "  commit " << r.commit << "  date " << r.date << "\n";
  os << "# command: " << r.command << "\n";
  os << "# timing: median of " << r.iters << " calls after " << r.warmup
     << " warm-up calls (CUDA events, L2 flushed), max over ranks\n";
  os << "# preamble_us: layout + notify kernel time by CUDA events, each call queued behind a "
     << r.preamble_hold_us << " us hold of the stream (0: none, so host launch latency counts)\n";
  if (r.ceiling_gbps > 0) {
    os << "# ceiling: all-pairs peer copy " << fixed(r.ceiling_gbps, 1)
       << " GB/s per GPU outgoing; one direction " << fixed(r.ceiling_one_way_gbps, 1) << " GB/s\n";
  } else {
    os << "# ceiling: not measured (needs 2 or more GPUs); efficiency is 0\n";
  }
  const bool correctness_only = r.multi_domain && r.multi_domain->correctness_only;
  if (r.shared_gpus && !correctness_only)
    os << "# " << kSharedGpuNote << ": ranks took turns on shared GPUs; not NVLink timing\n";
  if (correctness_only)
    os << "# " << kCorrectnessOnlyNote << ": ranks share GPUs; one untimed call per row\n";
  char line[512];
  const char* header_fmt = "%-10s %-17s %-5s %4s %7s %7s %10s %10s %11s %12s %10s %10s %12s %8s %6s%s\n";
  std::snprintf(line, sizeof line, header_fmt, "# impl", "op", "dtype", "sms", "tokens", "hidden", "time_us",
                "kernel_us", "preamble_us", "logical_GB/s", "wire_GB/s", "efficiency", "nccl_us", "speedup",
                "check", "");
  os << line;
  for (const ResultRow& w : r.rows) {
    const std::string note = !w.timed        ? std::string("  ") + kCorrectnessOnlyNote
                             : r.shared_gpus ? std::string("  ") + kSharedGpuNote
                                             : std::string();
    std::snprintf(line, sizeof line, header_fmt, w.impl.c_str(), w.op.c_str(), w.dtype.c_str(),
                  w.num_sms > 0 ? std::to_string(w.num_sms).c_str() : "-", std::to_string(w.tokens).c_str(),
                  std::to_string(w.hidden).c_str(), w.timed ? fixed(w.time_us, 1).c_str() : "-",
                  table_optional(w.kernel_us, 1).c_str(), table_optional(w.preamble_us, 1).c_str(),
                  fixed(w.logical_gbps, 1).c_str(), fixed(w.wire_gbps, 1).c_str(),
                  fixed(w.efficiency, 3).c_str(), table_optional(w.nccl_time_us, 1).c_str(),
                  table_optional(w.speedup_vs_nccl, 2).c_str(), w.check.c_str(), note.c_str());
    os << line;
  }
  return os.str();
}

std::string format_md_table(const RunReport& r) {
  if (!r.multi_domain) return "";
  const MdRunInfo& md = *r.multi_domain;
  std::ostringstream os;
  os << "# multi-domain: " << md.num_domains << " domains x " << md.ranks_per_domain
     << " ranks; bytes per call of the busiest rank, counted from the run's routing; NIC floor at "
     << fixed(md.nic_gbps, 1) << " GB/s\n";
  char line[256];
  const char* fmt = "%-10s %-9s %-5s %4s %7s %13s %13s %13s %13s %10s%s\n";
  std::snprintf(line, sizeof line, fmt, "# impl", "op", "dtype", "sms", "tokens", "nic_sent_MB",
                "nic_recv_MB", "nvl_MB", "nic_floor_us", "time_us", "");
  os << line;
  for (const ResultRow& w : r.rows) {
    if (!w.multi_domain) continue;
    const MdRowFields& m = *w.multi_domain;
    std::snprintf(line, sizeof line, fmt, w.impl.c_str(), w.op.c_str(), w.dtype.c_str(),
                  w.num_sms > 0 ? std::to_string(w.num_sms).c_str() : "-", std::to_string(w.tokens).c_str(),
                  fixed(m.nic_sent_bytes / 1e6, 3).c_str(), fixed(m.nic_recv_bytes / 1e6, 3).c_str(),
                  fixed(m.nvl_bytes / 1e6, 3).c_str(), fixed(m.nic_floor_us, 1).c_str(),
                  w.timed ? fixed(w.time_us, 1).c_str() : "-", w.timed ? "" : "  correctness only");
    os << line;
  }
  return os.str();
}

std::string csv_header() {
  return "workload,card,num_gpus,shared_gpus,commit,date,impl,op,dtype,num_sms,tokens,hidden,time_us,"
         "kernel_us,preamble_us,logical_gbps,wire_gbps,efficiency,nccl_time_us,speedup_vs_nccl,check,timed,"
         "ranks_per_domain,domains,nic_gbps,nic_sent_bytes,nic_recv_bytes,nvl_bytes,nic_floor_us\n";
}

std::string to_csv_rows(const RunReport& r) {
  std::ostringstream os;
  for (const ResultRow& w : r.rows) {
    os << csv_field(r.workload) << ',' << csv_field(r.card) << ',' << r.num_gpus << ','
       << json_bool(r.shared_gpus) << ',' << csv_field(r.commit) << ',' << csv_field(r.date) << ','
       << csv_field(w.impl) << ',' << csv_field(w.op) << ',' << csv_field(w.dtype) << ',' << w.num_sms << ','
       << w.tokens << ',' << w.hidden << ',' << (w.timed ? json_number(w.time_us) : "") << ','
       << csv_optional(w.kernel_us) << ',' << csv_optional(w.preamble_us) << ','
       << json_number(w.logical_gbps) << ',' << json_number(w.wire_gbps) << ',' << json_number(w.efficiency)
       << ',' << csv_optional(w.nccl_time_us) << ',' << csv_optional(w.speedup_vs_nccl) << ','
       << csv_field(w.check) << ',' << json_bool(w.timed) << csv_md_fields(r.multi_domain, w) << '\n';
  }
  return os.str();
}

void fill_nccl_comparison(std::vector<ResultRow>& rows) {
  for (ResultRow& row : rows) {
    row.nccl_time_us.reset();
    row.speedup_vs_nccl.reset();
    for (const ResultRow& base : rows) {
      if (base.impl != "nccl" || base.op != row.op || base.dtype != row.dtype || base.tokens != row.tokens)
        continue;
      row.nccl_time_us = base.time_us;
      if (row.time_us > 0) row.speedup_vs_nccl = base.time_us / row.time_us;
      break;
    }
  }
}

std::vector<ResultRow> rows_below_efficiency(const std::vector<ResultRow>& rows, double min_efficiency) {
  std::vector<ResultRow> below;
  for (const ResultRow& row : rows)
    if (row.impl == "epcomm" && !(row.efficiency >= min_efficiency)) below.push_back(row);
  return below;
}

namespace {
bool is_epcomm(const std::string& impl) {
  // Cached dispatches ("epcomm-cached", "epcomm-ce-cached") are not whole calls.
  return impl == "epcomm" || (impl.rfind("epcomm-", 0) == 0 && impl.find("cached") == std::string::npos);
}
bool same_group(const ResultRow& a, const ResultRow& b) {
  return a.op == b.op && a.dtype == b.dtype && a.num_sms == b.num_sms && a.tokens == b.tokens;
}
}  // namespace

std::vector<ResultRow> fastest_epcomm_rows(const std::vector<ResultRow>& rows) {
  std::vector<ResultRow> fastest;
  std::vector<bool> failed;
  for (const ResultRow& row : rows) {
    // An op that threw, or a correctness-only row, has no time.
    if (!is_epcomm(row.impl) || row.check == "error" || !row.timed) continue;
    std::size_t g = 0;
    while (g < fastest.size() && !same_group(fastest[g], row)) ++g;
    if (g == fastest.size()) {
      fastest.push_back(row);
      failed.push_back(false);
    } else if (row.time_us < fastest[g].time_us) {
      fastest[g] = row;
    }
    failed[g] = failed[g] || row.check == "fail";
  }
  std::vector<ResultRow> kept;
  for (std::size_t g = 0; g < fastest.size(); ++g)
    if (!failed[g]) kept.push_back(fastest[g]);
  return kept;
}

std::string format_fastest(const std::vector<ResultRow>& fastest) {
  std::string out;
  for (const ResultRow& r : fastest) {
    char speedup[48] = "";
    if (r.speedup_vs_nccl) std::snprintf(speedup, sizeof speedup, ", %.2fx NCCL", *r.speedup_vs_nccl);
    char line[256];
    std::snprintf(line, sizeof line, "# fastest: %s %s sms %d tokens %lld: %s %.1f us, efficiency %.3f%s\n",
                  r.op.c_str(), r.dtype.c_str(), r.num_sms, static_cast<long long>(r.tokens), r.impl.c_str(),
                  r.time_us, r.efficiency, speedup);
    out += line;
  }
  return out;
}

std::string output_path_for(const std::string& path, const std::string& workload, bool several_workloads) {
  const std::string placeholder = "{workload}";
  if (const auto at = path.find(placeholder); at != std::string::npos) {
    std::string out = path;
    out.replace(at, placeholder.size(), workload);
    return out;
  }
  if (!several_workloads) return path;
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  const bool has_extension = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  if (!has_extension) return path + "-" + workload;
  return path.substr(0, dot) + "-" + workload + path.substr(dot);
}

std::string utc_date_today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string commit_id(const std::string& env_commit) {
  if (!env_commit.empty()) return env_commit;
  const std::string configured = EPCOMM_BENCH_GIT_COMMIT;
  return configured.empty() ? std::string("unknown") : configured;
}

std::string join_command(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i > 0) out += ' ';
    const bool plain = !arg.empty() && arg.find_first_not_of(
                                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_=+./,:@%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  BENCH_CHECK_ARG(file.good(), "output file '", path, "': cannot open it for writing");
  file << text;
  file.close();
  BENCH_CHECK_ARG(!file.fail(), "output file '", path, "': writing failed");
}

}  // namespace epcomm::bench
