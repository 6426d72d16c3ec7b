// epcomm-bench --telemetry (tools/bench/telemetry.hpp): every rank's records summed per peer, the
// slowest peer named, the printed lines, the JSON member and the gather's wire form.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench/report.hpp"
#include "bench/telemetry.hpp"

namespace epcomm::bench {
namespace {

// Three ranks; rank 2 is the straggler: ranks 0 and 1 wait on it long, it hardly waits on them.
std::vector<RankTraffic> straggler_records() {
  return {
      {0, {"dispatch", 1, 1000, 900, 2000, 2}}, {0, {"dispatch", 2, 500, 400, 90000, 9}},
      {1, {"dispatch", 0, 700, 1000, 1000, 1}}, {1, {"dispatch", 2, 300, 200, 60000, 6}},
      {2, {"dispatch", 0, 400, 500, 0, 0}},     {2, {"dispatch", 1, 200, 300, 500, 1}},
      {0, {"combine", 1, 900, 1000, 7000, 3}},  {1, {"combine", 0, 1000, 700, 4000, 2}},
      {0, {"dispatch", 0, 123, 123, 99999, 1}},  // a rank's own row: no peer's traffic
  };
}

TEST(BenchTelemetry, SumsEachPeerOverTheOtherRanks) {
  const RowTelemetry t = summarize_telemetry(straggler_records(), 60);
  EXPECT_EQ(t.calls, 60);
  ASSERT_EQ(t.operations.size(), 2u);
  const OpTelemetry& d = t.operations[0];
  EXPECT_EQ(d.operation, "dispatch");  // first seen first
  ASSERT_EQ(d.peers.size(), 3u);
  EXPECT_EQ(d.peers[0].peer, 0);
  EXPECT_EQ(d.peers[0].bytes_to, 700u + 400u);     // ranks 1 and 2 sent to rank 0 (its own row left out)
  EXPECT_EQ(d.peers[0].bytes_from, 1000u + 500u);  // and received from it
  EXPECT_EQ(d.peers[0].wait_ns, 1000u);
  EXPECT_EQ(d.peers[2].bytes_to, 500u + 300u);
  EXPECT_EQ(d.peers[2].wait_ns, 150000u);
  EXPECT_EQ(d.peers[2].waits, 15u);
  EXPECT_EQ(d.slowest_peer, 2);
  EXPECT_EQ(t.operations[1].operation, "combine");
  EXPECT_EQ(t.operations[1].slowest_peer, 1);  // within combine rank 1 was waited on longest
  EXPECT_EQ(t.slowest_peer, 2);                // over both operations rank 2
  EXPECT_EQ(t.slowest_wait_ns, 150000u);
}

TEST(BenchTelemetry, NoPolledWaitNamesNoPeer) {
  const RowTelemetry t =
      summarize_telemetry({{0, {"dispatch", 1, 64, 64, 0, 0}}, {1, {"dispatch", 0, 64, 64, 0, 0}}}, 1);
  EXPECT_EQ(t.slowest_peer, -1);
  EXPECT_EQ(t.operations.at(0).slowest_peer, -1);
  EXPECT_NE(format_telemetry("row", t).find("no wait had to poll: no slow peer"), std::string::npos);
  EXPECT_NE(format_telemetry("row", summarize_telemetry({}, 1)).find("nothing counted"), std::string::npos);
}

TEST(BenchTelemetry, TieGoesToTheLowerRank) {
  const RowTelemetry t =
      summarize_telemetry({{0, {"combine", 2, 0, 0, 500, 1}}, {2, {"combine", 1, 0, 0, 500, 1}}}, 1);
  EXPECT_EQ(t.slowest_peer, 1);
}

TEST(BenchTelemetry, PrintedLinesNameTheSlowestPeerAndEveryPeer) {
  const std::string text = format_telemetry("epcomm dispatch bf16 24 SMs 4096 tokens",
                                            summarize_telemetry(straggler_records(), 60));
  EXPECT_NE(text.find("# telemetry epcomm dispatch bf16 24 SMs 4096 tokens (60 calls, every rank): "
                      "slowest peer: rank 2 (the others waited on it 150.0 us in all)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("#   combine: slowest peer rank 1"), std::string::npos) << text;
  EXPECT_NE(
      text.find("#     rank 2: sent to it 800 B, received from it 600 B, waited on it 150.0 us (15 waits)"),
      std::string::npos)
      << text;
}

TEST(BenchTelemetry, LargeCountsInBinaryUnits) {
  const RowTelemetry t = summarize_telemetry({{0, {"dispatch", 1, 3u << 20, 1536, 0, 0}}}, 1);
  const std::string text = format_telemetry("row", t);
  EXPECT_NE(text.find("sent to it 3.00 MiB, received from it 1.50 KiB"), std::string::npos) << text;
}

TEST(BenchTelemetry, JsonMember) {
  const RowTelemetry t =
      summarize_telemetry({{0, {"dispatch", 1, 10, 20, 2500, 2}}, {1, {"dispatch", 0, 30, 40, 0, 0}}}, 5);
  EXPECT_EQ(
      telemetry_json(t),
      "{\"calls\": 5, \"slowest_peer\": 1, \"slowest_wait_us\": 2.5, \"operations\": [{\"operation\": "
      "\"dispatch\", \"slowest_peer\": 1, \"peers\": [{\"peer\": 0, \"bytes_to\": 30, \"bytes_from\": 40, "
      "\"wait_us\": 0.0, \"waits\": 0}, {\"peer\": 1, \"bytes_to\": 10, \"bytes_from\": 20, \"wait_us\": "
      "2.5, \"waits\": 2}]}]}");
}

TEST(BenchTelemetry, RowsCarryTheirTelemetryInTheRunJsonAndTable) {
  RunReport report;
  report.workload = "ll-small";
  const ResultRow plain{.impl = "nccl", .op = "dispatch"};
  const ResultRow counted{.impl = "epcomm",
                          .op = "dispatch",
                          .dtype = "fp8",
                          .tokens = 128,
                          .telemetry = summarize_telemetry(straggler_records(), 60)};
  report.rows = {plain, counted};
  const std::string json = to_json(report);
  EXPECT_EQ(json.find("\"telemetry\""), json.rfind("\"telemetry\""));  // one row has it
  EXPECT_NE(json.find("\"telemetry\": {\"calls\": 60, \"slowest_peer\": 2"), std::string::npos) << json;
  const std::string printed = format_run_telemetry(report);
  EXPECT_EQ(printed.find("nccl"), std::string::npos);
  EXPECT_NE(printed.find("# telemetry epcomm dispatch fp8 0 SMs 128 tokens"), std::string::npos) << printed;
  report.rows = {plain};
  EXPECT_EQ(to_json(report).find("telemetry"), std::string::npos);
  EXPECT_TRUE(format_run_telemetry(report).empty());
}

TEST(BenchTelemetry, WireFormRoundTripsAndPads) {
  const std::vector<PeerTraffic> rows = {{"low-latency dispatch", 3, 1, 2, 3, 4},
                                         {std::string(40, 'x'), 5, 6, 7, 8, 9}};
  const std::vector<unsigned char> bytes = encode_traffic(rows, 4);  // two padding records
  const std::vector<PeerTraffic> back = decode_traffic(bytes.data(), 4);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].operation, "low-latency dispatch");
  EXPECT_EQ(back[0].peer, 3);
  EXPECT_EQ(back[0].bytes_sent, 1u);
  EXPECT_EQ(back[0].bytes_received, 2u);
  EXPECT_EQ(back[0].wait_ns, 3u);
  EXPECT_EQ(back[0].waits, 4u);
  EXPECT_EQ(back[1].operation, std::string(kMaxOperationName, 'x'));  // cut, never overrun
  EXPECT_EQ(back[1].waits, 9u);
}

TEST(BenchTelemetry, DecodeNeverReadsPastAnUnterminatedName) {
  std::vector<unsigned char> bytes = encode_traffic({{"dispatch", 1, 0, 0, 0, 0}}, 1);
  for (std::size_t i = 0; i <= kMaxOperationName; ++i) bytes[i] = 'y';  // no NUL in the name field
  const std::vector<PeerTraffic> back = decode_traffic(bytes.data(), 1);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].operation, std::string(kMaxOperationName, 'y'));
}

// Rank 0 of two, the other rank played by the fake: it answers each all_gather with what rank 1,
// holding `peer`, would send.
class TwoRankFake final : public Bootstrap {
 public:
  explicit TwoRankFake(std::vector<PeerTraffic> peer) : peer_(std::move(peer)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_gather(const void* in, void* out, std::size_t bytes) override {
    auto* slots = static_cast<unsigned char*>(out);
    std::memcpy(slots, in, bytes);
    if (calls_++ == 0) {  // the record counts
      const std::uint64_t count = peer_.size();
      ASSERT_EQ(bytes, sizeof count);
      std::memcpy(slots + bytes, &count, sizeof count);
      return;
    }
    const std::size_t record = encode_traffic({}, 1).size();
    const std::vector<unsigned char> theirs = encode_traffic(peer_, bytes / record);
    ASSERT_EQ(theirs.size(), bytes);
    std::memcpy(slots + bytes, theirs.data(), bytes);
  }

 private:
  std::vector<PeerTraffic> peer_;
  int calls_ = 0;
};

TEST(BenchTelemetry, GatherPadsToTheLongestListAndTagsRanks) {
  TwoRankFake fake({{"dispatch", 0, 1, 2, 3, 4}, {"combine", 0, 5, 6, 7, 8}, {"barrier", 0, 0, 0, 9, 1}});
  const std::vector<RankTraffic> all = gather_telemetry(fake, {{"dispatch", 1, 10, 20, 30, 40}});
  ASSERT_EQ(all.size(), 4u);  // rank 0's one record (its padding dropped), rank 1's three
  EXPECT_EQ(all[0].rank, 0);
  EXPECT_EQ(all[0].traffic.peer, 1);
  EXPECT_EQ(all[0].traffic.waits, 40u);
  EXPECT_EQ(all[1].rank, 1);
  EXPECT_EQ(all[3].rank, 1);
  EXPECT_EQ(all[3].traffic.operation, "barrier");
  EXPECT_EQ(all[3].traffic.wait_ns, 9u);
}

TEST(BenchTelemetry, GatherOfNothingIsNothing) {
  TwoRankFake fake({});
  EXPECT_TRUE(gather_telemetry(fake, {}).empty());
}

}  // namespace
}  // namespace epcomm::bench
