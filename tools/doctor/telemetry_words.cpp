#include "doctor/telemetry_words.hpp"

#include <cstdio>

namespace epcomm::doctor {

namespace {

// "1.50 MiB" from 1 MiB up, else whole KiB, else bytes.
std::string size_words(std::uint64_t bytes) {
  char text[40];
  if (bytes >= (std::uint64_t{1} << 20)) {
    std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / static_cast<double>(1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof text, "%llu KiB", static_cast<unsigned long long>(bytes / 1024));
  } else {
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return text;
}

}  // namespace

std::vector<PeerSums> sum_by_peer(const std::vector<PeerTraffic>& traffic, int num_ranks) {
  std::vector<PeerSums> sums(static_cast<std::size_t>(num_ranks));
  for (const PeerTraffic& t : traffic) {
    if (t.peer < 0 || t.peer >= num_ranks) continue;
    PeerSums& s = sums[static_cast<std::size_t>(t.peer)];
    s.bytes_sent += t.bytes_sent;
    s.bytes_received += t.bytes_received;
    s.wait_ns += t.wait_ns;
    s.waits += t.waits;
  }
  return sums;
}

std::vector<std::uint64_t> to_words(const std::vector<PeerSums>& sums) {
  std::vector<std::uint64_t> words;
  words.reserve(sums.size() * kPeerSumsWords);
  for (const PeerSums& s : sums)
    words.insert(words.end(), {s.bytes_sent, s.bytes_received, s.wait_ns, s.waits});
  return words;
}

std::vector<PeerSums> from_words(const std::uint64_t* words, int num_ranks) {
  std::vector<PeerSums> sums(static_cast<std::size_t>(num_ranks));
  for (std::size_t p = 0; p < sums.size(); ++p) {
    const std::uint64_t* w = words + p * kPeerSumsWords;
    sums[p] = {w[0], w[1], w[2], w[3]};
  }
  return sums;
}

std::string telemetry_words(const std::vector<std::vector<PeerSums>>& by_rank) {
  if (by_rank.size() < 2) return "telemetry: one rank, no peer to wait on";
  // As PeerTraffic rows of every rank about its peers, so slowest_peer() decides as the API does.
  std::vector<PeerTraffic> rows;
  std::uint64_t moved = 0, total_wait = 0;
  for (std::size_t r = 0; r < by_rank.size(); ++r) {
    for (std::size_t p = 0; p < by_rank[r].size(); ++p) {
      if (p == r) continue;
      const PeerSums& s = by_rank[r][p];
      moved += s.bytes_sent;
      total_wait += s.wait_ns;
      rows.push_back({"", static_cast<int>(p), s.bytes_sent, s.bytes_received, s.wait_ns, s.waits});
    }
  }
  std::string words = "telemetry: " + size_words(moved) + " moved between the ranks; ";
  const int slowest = slowest_peer(rows);
  if (slowest < 0) return words + "no rank had to wait on a peer";
  std::uint64_t wait_ns = 0, waits = 0;
  for (const PeerTraffic& t : rows) {
    if (t.peer != slowest) continue;
    wait_ns += t.wait_ns;
    waits += t.waits;
  }
  char tail[160];
  std::snprintf(
      tail, sizeof tail,
      "slowest peer: rank %d (the others waited on it %.1f us in %llu waits, %.0f%% of all waiting)", slowest,
      static_cast<double>(wait_ns) / 1e3, static_cast<unsigned long long>(waits),
      100.0 * static_cast<double>(wait_ns) / static_cast<double>(total_wait));
  return words + tail;
}

}  // namespace epcomm::doctor
