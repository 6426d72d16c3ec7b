// Per-peer telemetry's host side (core/telemetry.hpp, epcomm/telemetry.hpp): the device table read
// back as rows, and the peer a straggler hunt names.
#include <gtest/gtest.h>

#include <vector>

#include "core/telemetry.hpp"
#include "core/domain_view.hpp"

namespace epcomm {
namespace {

std::vector<PeerCounters> empty_table() {
  return std::vector<PeerCounters>(static_cast<std::size_t>(kTelemetryOps) * kTelemetryPeers, PeerCounters{});
}
PeerCounters& at(std::vector<PeerCounters>& t, OpId op, int peer) {
  return t[static_cast<std::size_t>(static_cast<int>(op) * kTelemetryPeers + peer)];
}

TEST(Telemetry, RowsNameTheOperationAndGlobalRankAndSkipEmptyEntries) {
  auto table = empty_table();
  at(table, OpId::kDispatch, 1) = {4096, 2048, 0, 0};
  at(table, OpId::kNotify, 3) = {0, 0, 1500, 2};
  at(table, OpId::kLlDispatch, 0) = {7, 0, 0, 0};
  const std::vector<PeerTraffic> rows = telemetry_rows(table.data(), kTelemetryPeers, 4, /*base_rank=*/8);
  ASSERT_EQ(rows.size(), 3u);
  // Operation-major (OpId order), then by peer.
  EXPECT_EQ(rows[0].operation, "dispatch's count exchange (notify)");
  EXPECT_EQ(rows[0].peer, 11);
  EXPECT_EQ(rows[0].wait_ns, 1500u);
  EXPECT_EQ(rows[0].waits, 2u);
  EXPECT_EQ(rows[1].operation, "dispatch");
  EXPECT_EQ(rows[1].peer, 9);
  EXPECT_EQ(rows[1].bytes_sent, 4096u);
  EXPECT_EQ(rows[1].bytes_received, 2048u);
  EXPECT_EQ(rows[2].operation, "low-latency dispatch");
  EXPECT_EQ(rows[2].peer, 8);
}

TEST(Telemetry, PeersBeyondTheDomainAreNotRead) {
  auto table = empty_table();
  at(table, OpId::kCombine, 5) = {1, 1, 1, 1};
  EXPECT_TRUE(telemetry_rows(table.data(), kTelemetryPeers, 4, 0).empty());
}

TEST(Telemetry, SlowestPeerSumsWaitsOverOperations) {
  const std::vector<PeerTraffic> t = {{"dispatch", 1, 0, 0, 500, 1},
                                      {"combine", 1, 0, 0, 600, 1},
                                      {"dispatch", 2, 0, 0, 1000, 3},
                                      {"barrier", 3, 0, 0, 0, 0}};
  EXPECT_EQ(slowest_peer(t), 1);                                   // 1100 ns in all, more than rank 2's 1000
  EXPECT_EQ(slowest_peer({{"dispatch", 4, 100, 100, 0, 0}}), -1);  // nobody was waited on
  EXPECT_EQ(slowest_peer({}), -1);
}

}  // namespace
}  // namespace epcomm
