#include "bench/telemetry.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <type_traits>

#include "bench/report.hpp"

namespace epcomm::bench {

namespace {

// The fixed-size record of the gather: every rank sends the same number of them.
struct WireTraffic {
  char operation[kMaxOperationName + 1];  // NUL-terminated; empty: padding
  std::int32_t peer;
  std::int32_t reserved;
  std::uint64_t bytes_sent;
  std::uint64_t bytes_received;
  std::uint64_t wait_ns;
  std::uint64_t waits;
};
static_assert(std::is_trivially_copyable_v<WireTraffic>);

std::string bytes_text(std::uint64_t bytes) {
  char buf[32];
  if (bytes >= (std::uint64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.2f KiB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

std::string us_text(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f us", static_cast<double>(ns) / 1e3);
  return buf;
}

}  // namespace

RowTelemetry summarize_telemetry(const std::vector<RankTraffic>& records, int calls) {
  RowTelemetry t;
  t.calls = calls;
  std::vector<std::string> order;
  std::map<std::string, std::map<int, PeerTotals>> by_op;
  std::map<std::string, std::vector<PeerTraffic>> rows_by_op;  // for slowest_peer (the API's rule)
  std::vector<PeerTraffic> rows;
  std::map<int, std::uint64_t> waited_all;
  for (const RankTraffic& r : records) {
    const PeerTraffic& p = r.traffic;
    if (p.peer == r.rank) continue;  // a rank's own rows are no peer's traffic
    if (!by_op.contains(p.operation)) order.push_back(p.operation);
    PeerTotals& totals = by_op[p.operation][p.peer];
    totals.peer = p.peer;
    totals.bytes_to += p.bytes_sent;
    totals.bytes_from += p.bytes_received;
    totals.wait_ns += p.wait_ns;
    totals.waits += p.waits;
    waited_all[p.peer] += p.wait_ns;
    rows_by_op[p.operation].push_back(p);
    rows.push_back(p);
  }
  for (const std::string& name : order) {
    OpTelemetry op;
    op.operation = name;
    for (const auto& [peer, totals] : by_op[name]) op.peers.push_back(totals);
    op.slowest_peer = slowest_peer(rows_by_op[name]);
    t.operations.push_back(std::move(op));
  }
  t.slowest_peer = slowest_peer(rows);
  if (t.slowest_peer >= 0) t.slowest_wait_ns = waited_all[t.slowest_peer];
  return t;
}

std::vector<unsigned char> encode_traffic(const std::vector<PeerTraffic>& rows, std::size_t num_records) {
  std::vector<unsigned char> bytes(num_records * sizeof(WireTraffic), 0);
  for (std::size_t i = 0; i < rows.size() && i < num_records; ++i) {
    WireTraffic w{};
    const std::string& name = rows[i].operation;
    std::memcpy(w.operation, name.data(), std::min(name.size(), kMaxOperationName));
    w.peer = rows[i].peer;
    w.bytes_sent = rows[i].bytes_sent;
    w.bytes_received = rows[i].bytes_received;
    w.wait_ns = rows[i].wait_ns;
    w.waits = rows[i].waits;
    std::memcpy(bytes.data() + i * sizeof(WireTraffic), &w, sizeof w);
  }
  return bytes;
}

std::vector<PeerTraffic> decode_traffic(const unsigned char* bytes, std::size_t num_records) {
  std::vector<PeerTraffic> rows;
  for (std::size_t i = 0; i < num_records; ++i) {
    WireTraffic w;
    std::memcpy(&w, bytes + i * sizeof(WireTraffic), sizeof w);
    w.operation[kMaxOperationName] = '\0';  // a peer's record is never trusted to end its string
    if (w.operation[0] == '\0') continue;   // padding
    rows.push_back({w.operation, w.peer, w.bytes_sent, w.bytes_received, w.wait_ns, w.waits});
  }
  return rows;
}

std::vector<RankTraffic> gather_telemetry(Bootstrap& bootstrap, const std::vector<PeerTraffic>& mine) {
  const auto R = static_cast<std::size_t>(bootstrap.size());
  // NOTE: all_gather moves equal sizes from every rank: agree on the longest list, pad the others.
  const std::uint64_t count = mine.size();
  std::vector<std::uint64_t> counts(R);
  bootstrap.all_gather(&count, counts.data(), sizeof count);
  const std::size_t longest = *std::max_element(counts.begin(), counts.end());
  std::vector<RankTraffic> all;
  if (longest == 0) return all;
  const std::vector<unsigned char> sent = encode_traffic(mine, longest);
  std::vector<unsigned char> got(sent.size() * R);
  bootstrap.all_gather(sent.data(), got.data(), sent.size());
  for (std::size_t r = 0; r < R; ++r) {
    for (PeerTraffic& p : decode_traffic(got.data() + r * sent.size(), longest))
      all.push_back({static_cast<int>(r), std::move(p)});
  }
  return all;
}

std::string format_telemetry(const std::string& row_name, const RowTelemetry& t) {
  std::ostringstream os;
  os << "# telemetry " << row_name << " (" << t.calls << " calls, every rank): ";
  if (t.operations.empty()) return os.str() + "nothing counted\n";
  if (t.slowest_peer < 0)
    os << "no wait had to poll: no slow peer\n";
  else
    os << "slowest peer: rank " << t.slowest_peer << " (the others waited on it "
       << us_text(t.slowest_wait_ns) << " in all)\n";
  for (const OpTelemetry& op : t.operations) {
    os << "#   " << op.operation << ": slowest peer "
       << (op.slowest_peer < 0 ? std::string("none") : "rank " + std::to_string(op.slowest_peer)) << "\n";
    for (const PeerTotals& p : op.peers)
      os << "#     rank " << p.peer << ": sent to it " << bytes_text(p.bytes_to) << ", received from it "
         << bytes_text(p.bytes_from) << ", waited on it " << us_text(p.wait_ns) << " (" << p.waits
         << " waits)\n";
  }
  return os.str();
}

std::string telemetry_json(const RowTelemetry& t) {
  std::ostringstream os;
  os << "{\"calls\": " << t.calls << ", \"slowest_peer\": " << t.slowest_peer
     << ", \"slowest_wait_us\": " << json_number(static_cast<double>(t.slowest_wait_ns) / 1e3)
     << ", \"operations\": [";
  for (std::size_t i = 0; i < t.operations.size(); ++i) {
    const OpTelemetry& op = t.operations[i];
    os << (i == 0 ? "" : ", ") << "{\"operation\": \"" << json_escape(op.operation)
       << "\", \"slowest_peer\": " << op.slowest_peer << ", \"peers\": [";
    for (std::size_t j = 0; j < op.peers.size(); ++j) {
      const PeerTotals& p = op.peers[j];
      os << (j == 0 ? "" : ", ") << "{\"peer\": " << p.peer << ", \"bytes_to\": " << p.bytes_to
         << ", \"bytes_from\": " << p.bytes_from
         << ", \"wait_us\": " << json_number(static_cast<double>(p.wait_ns) / 1e3)
         << ", \"waits\": " << p.waits << "}";
    }
    os << "]}";
  }
  os << "]}";
  return os.str();
}

}  // namespace epcomm::bench
