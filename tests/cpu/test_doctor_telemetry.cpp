// epcomm-doctor's telemetry sentence (tools/doctor/telemetry_words.hpp) from fake records: every
// rank's counts summed per peer, the slowest peer named in words, the wire form of the gather.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "doctor/telemetry_words.hpp"

namespace epcomm::doctor {
namespace {

// Three ranks; rank 2 straggles: ranks 0 and 1 wait on it, it barely waits on them.
std::vector<std::vector<PeerSums>> straggler() {
  return {
      {{0, 0, 0, 0}, {1 << 20, 1 << 20, 4000, 2}, {1 << 19, 1 << 19, 60000, 6}},
      {{1 << 20, 1 << 20, 2000, 1}, {0, 0, 0, 0}, {1 << 19, 1 << 19, 30000, 6}},
      {{1 << 19, 1 << 19, 0, 0}, {1 << 19, 1 << 19, 4000, 1}, {99, 99, 999999, 9}},  // its own entry: ignored
  };
}

TEST(DoctorTelemetry, NamesTheSlowestPeerInWords) {
  EXPECT_EQ(
      telemetry_words(straggler()),
      "telemetry: 4.00 MiB moved between the ranks; slowest peer: rank 2 (the others waited on it 90.0 us "
      "in 12 waits, 90% of all waiting)");
}

TEST(DoctorTelemetry, NoPolledWaitSaysSo) {
  std::vector<std::vector<PeerSums>> quiet = {{{}, {2048, 2048, 0, 0}}, {{3000, 2048, 0, 0}, {}}};
  EXPECT_EQ(telemetry_words(quiet),
            "telemetry: 4 KiB moved between the ranks; no rank had to wait on a peer");
  quiet[0][1].bytes_sent = 10;
  quiet[1][0].bytes_sent = 20;
  EXPECT_EQ(telemetry_words(quiet),
            "telemetry: 30 bytes moved between the ranks; no rank had to wait on a peer");
}

TEST(DoctorTelemetry, OneRankHasNoPeer) {
  EXPECT_EQ(telemetry_words({{{}}}), "telemetry: one rank, no peer to wait on");
  EXPECT_EQ(telemetry_words({}), "telemetry: one rank, no peer to wait on");
}

TEST(DoctorTelemetry, SumsEveryOperationPerPeer) {
  const std::vector<PeerTraffic> rows = {{"dispatch", 1, 100, 200, 300, 1},
                                         {"combine", 1, 10, 20, 30, 2},
                                         {"barrier", 0, 0, 0, 5, 1},
                                         {"dispatch", 7, 1, 1, 1, 1}};  // beyond the ranks: ignored
  const std::vector<PeerSums> sums = sum_by_peer(rows, 2);
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[1].bytes_sent, 110u);
  EXPECT_EQ(sums[1].bytes_received, 220u);
  EXPECT_EQ(sums[1].wait_ns, 330u);
  EXPECT_EQ(sums[1].waits, 3u);
  EXPECT_EQ(sums[0].wait_ns, 5u);
  EXPECT_EQ(sums[0].bytes_sent, 0u);
}

TEST(DoctorTelemetry, WireFormRoundTrips) {
  const std::vector<PeerSums> sums = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  const std::vector<std::uint64_t> words = to_words(sums);
  ASSERT_EQ(words.size(), 2u * kPeerSumsWords);
  const std::vector<PeerSums> back = from_words(words.data(), 2);
  EXPECT_EQ(back[1].bytes_sent, 5u);
  EXPECT_EQ(back[1].bytes_received, 6u);
  EXPECT_EQ(back[1].wait_ns, 7u);
  EXPECT_EQ(back[1].waits, 8u);
  EXPECT_EQ(back[0].waits, 4u);
}

}  // namespace
}  // namespace epcomm::doctor
