// The multi-domain symmetric region's layout (internode/md_layout.hpp, md_slot.hpp): for many
// (G, D) up to 8 x 256 (EP2048), every section is aligned, inside the region and disjoint from the
// others; every indexed element (counter, flag, mailbox, ring slot, staging slot) has its own
// bytes; the header does not move when the operation's rings change; the slot formats and the
// count records fit what holds them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "internode/md_layout.hpp"
#include "internode/md_route.hpp"

namespace epcomm {
namespace {

struct Interval {
  std::string name;
  std::size_t begin, end;
};

// Intervals sorted by start must not overlap, and all lie inside [0, total).
void expect_disjoint(std::vector<Interval> parts, std::size_t total) {
  std::sort(parts.begin(), parts.end(), [](const Interval& a, const Interval& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;  // empty sections first
  });
  for (std::size_t i = 0; i < parts.size(); ++i) {
    EXPECT_LE(parts[i].begin, parts[i].end) << parts[i].name;
    EXPECT_LE(parts[i].end, total) << parts[i].name << " ends past the region";
    if (i > 0)
      EXPECT_LE(parts[i - 1].end, parts[i].begin) << parts[i - 1].name << " overlaps " << parts[i].name;
  }
}

std::vector<Interval> sections(const MdSymmetricLayout& l) {
  const auto P = static_cast<std::size_t>(l.header.num_peers());
  const std::size_t ring_count = P * l.rings.num_channels * l.rings.ring_slots;
  return {
      {"counters", l.header.counters,
       l.header.counters + 8 * kMdNumOps * kMdNumCounters * P * kMdMaxChannels},
      {"count flags", l.header.count_flags, l.header.count_flags + 8 * 2 * P},
      {"mailboxes", l.header.mailboxes, l.header.mailboxes + 2 * P * l.header.record_capacity_bytes},
      {"slot flags", l.rings.flags, l.rings.flags + 8 * ring_count},
      {"rings", l.rings.rings, l.rings.rings + l.slot.stride * ring_count},
      {"staging", l.rings.staging,
       l.rings.staging +
           l.slot.stride * static_cast<std::size_t>(l.rings.num_channels * l.rings.staging_slots)},
      {"record staging", l.header.record_staging,
       l.header.record_staging + P * l.header.record_capacity_bytes},
  };
}

// The shapes of the sweep: (G, D).
const std::vector<std::pair<int, int>> kShapes = {{8, 2}, {8, 4},  {8, 8},   {8, 16},  {8, 32},  {8, 256},
                                                  {4, 3}, {1, 64}, {1, 2},   {72, 2},  {72, 28}, {2, 2},
                                                  {4, 2}, {2, 4},  {1, 256}, {16, 128}};

// Ring configurations of the sweep: (C, N, S).
const std::vector<std::tuple<int, int, int>> kConfigs = {{1, 4, 1}, {12, 128, 32}, {64, 7, 3}};

MdSlot dispatch_slot(int G, bool fp8, int k) {
  const std::int64_t hidden = 7168;
  return MdSlot::dispatch(fp8 ? hidden : hidden * 2, fp8 ? static_cast<int>(hidden / 128) : 0, k, G);
}

TEST(InternodeLayout, SectionsAreAlignedDisjointAndInside) {
  for (const auto& [G, D] : kShapes) {
    for (const MdSlot& slot :
         {dispatch_slot(G, false, 8), dispatch_slot(G, true, 8), dispatch_slot(G, false, 0),
          MdSlot::combine(7168, 8), MdSlot::combine(2560, 0)}) {
      for (const auto& [C, N, S] : kConfigs) {
        SCOPED_TRACE(testing::Message()
                     << G << "x" << D << " C=" << C << " N=" << N << " S=" << S << " stride=" << slot.stride);
        const MdSymmetricLayout l = MdSymmetricLayout::make(D, G, C, N, S, slot);
        for (std::size_t offset :
             {l.header.counters, l.header.count_flags, l.header.mailboxes, l.header.record_staging})
          EXPECT_EQ(offset % kMdSmallAlignment, 0u);
        EXPECT_EQ(l.header.record_capacity_bytes % kMdSmallAlignment, 0u);
        for (std::size_t offset :
             {l.header.total_bytes, l.rings.flags, l.rings.rings, l.rings.staging, l.total_bytes()})
          EXPECT_EQ(offset % kRegionAlignment, 0u);
        EXPECT_EQ(l.slot.stride % kMdSlotAlignment, 0u);
        expect_disjoint(sections(l), l.total_bytes());
        EXPECT_GE(l.rings.flags, l.header.total_bytes) << "rings start inside the header";
      }
    }
  }
}

// Every element's bytes: [offset, offset + size), distinct and inside its section.
void expect_elements_disjoint(std::vector<Interval> elements, const Interval& section) {
  for (const Interval& e : elements) {
    ASSERT_GE(e.begin, section.begin) << e.name << " before " << section.name;
    ASSERT_LE(e.end, section.end) << e.name << " past " << section.name;
  }
  expect_disjoint(std::move(elements), section.end);
}

TEST(InternodeLayout, EveryIndexedElementHasItsOwnBytes) {
  for (const auto& [G, D] : kShapes) {
    SCOPED_TRACE(testing::Message() << G << "x" << D);
    const int C = D > 64 ? 3 : 5, N = 6, S = 4;  // all elements of large shapes, kept few
    const MdSymmetricLayout l = MdSymmetricLayout::make(D, G, C, N, S, dispatch_slot(G, true, 4));
    const std::vector<Interval> sec = sections(l);
    const int P = D - 1;
    std::vector<Interval> counters, flags, slots, staging, boxes;
    for (int op = 0; op < kMdNumOps; ++op)
      for (int kind = 0; kind < kMdNumCounters; ++kind)
        for (int p = 0; p < P; ++p)
          for (int c = 0; c < kMdMaxChannels; ++c) {
            const std::size_t o = l.header.counter(op, kind, p, c);
            EXPECT_EQ(o % 8, 0u);
            counters.push_back({"counter", o, o + 8});
          }
    expect_elements_disjoint(std::move(counters), sec[0]);
    std::vector<Interval> count_flags;
    for (int parity = 0; parity < 2; ++parity)
      for (int p = 0; p < P; ++p) {
        count_flags.push_back(
            {"count flag", l.header.count_flag(parity, p), l.header.count_flag(parity, p) + 8});
        boxes.push_back({"mailbox", l.header.mailbox(parity, p),
                         l.header.mailbox(parity, p) + l.header.record_capacity_bytes});
        EXPECT_EQ(l.header.mailbox(parity, p) % kMdSmallAlignment, 0u);
      }
    expect_elements_disjoint(std::move(count_flags), sec[1]);
    expect_elements_disjoint(std::move(boxes), sec[2]);
    std::vector<Interval> records;
    for (int p = 0; p < P; ++p) {
      records.push_back({"staged record", l.header.staged_record(p),
                         l.header.staged_record(p) + l.header.record_capacity_bytes});
      EXPECT_EQ(l.header.staged_record(p) % kMdSmallAlignment, 0u);
    }
    expect_elements_disjoint(std::move(records), sec[6]);
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c)
        for (int k = 0; k < N; ++k) {
          flags.push_back({"flag", l.rings.flag(p, c, k), l.rings.flag(p, c, k) + 8});
          slots.push_back({"slot", l.rings.slot(p, c, k), l.rings.slot(p, c, k) + l.slot.stride});
          // The k-th and the (k + N)-th slot of a stream share their bytes: the ring wraps.
          EXPECT_EQ(l.rings.slot(p, c, k), l.rings.slot(p, c, static_cast<std::uint64_t>(k) + 3 * N));
        }
    expect_elements_disjoint(std::move(flags), sec[3]);
    expect_elements_disjoint(std::move(slots), sec[4]);
    for (int c = 0; c < C; ++c)
      for (int k = 0; k < S; ++k)
        staging.push_back(
            {"staging", l.rings.staging_slot(c, k), l.rings.staging_slot(c, k) + l.slot.stride});
    expect_elements_disjoint(std::move(staging), sec[5]);
  }
}

TEST(InternodeLayout, HeaderDoesNotMoveWithTheRings) {
  // Counters persist across operations (md_layout.hpp's NOTE): only the rings may move.
  for (const auto& [G, D] : kShapes) {
    const MdSymmetricLayout a = MdSymmetricLayout::make(D, G, 1, 4, 1, dispatch_slot(G, false, 8));
    const MdSymmetricLayout b = MdSymmetricLayout::make(D, G, 64, 300, 32, MdSlot::combine(7168, 8));
    EXPECT_EQ(a.header.total_bytes, b.header.total_bytes);
    EXPECT_EQ(a.header.counter(1, 2, D - 2, 63), b.header.counter(1, 2, D - 2, 63));
    EXPECT_EQ(a.header.mailbox(1, D - 2), b.header.mailbox(1, D - 2));
  }
}

TEST(InternodeLayout, FitTakesTheMostRingSlotsThatFit) {
  for (const auto& [G, D] : kShapes) {
    if (D > 64) continue;  // the walk is the same; keep the sweep short
    const MdSlot slot = dispatch_slot(G, false, 8);
    for (std::size_t bytes :
         {std::size_t{1} << 20, std::size_t{100} << 20, std::size_t{1} << 30, std::size_t{3} << 30}) {
      const MdSymmetricLayout l = MdSymmetricLayout::fit(bytes, D, G, 12, 32, slot);
      SCOPED_TRACE(testing::Message() << G << "x" << D << " bytes=" << bytes << " N=" << l.rings.ring_slots);
      if (l.rings.ring_slots > 0) EXPECT_LE(l.total_bytes(), bytes);  // 0: not even one slot fits
      if (l.rings.ring_slots < kMdMaxRingSlots)
        EXPECT_GT(MdSymmetricLayout::make(D, G, 12, l.rings.ring_slots + 1, 32, slot).total_bytes(), bytes);
    }
  }
  // One domain has no peers, hence no rings.
  EXPECT_EQ(
      MdSymmetricLayout::fit(std::size_t{1} << 30, 1, 8, 12, 32, dispatch_slot(8, false, 8)).rings.ring_slots,
      0);
}

TEST(InternodeLayout, SlotSectionsFitTheirPut) {
  for (int G : {1, 2, 8, 31, 32, 33, 64, 72}) {
    for (const MdSlot& s : {dispatch_slot(G, false, 8), dispatch_slot(G, true, 8), dispatch_slot(G, true, 0),
                            MdSlot::dispatch(2 * 2560, 0, 1, G)}) {
      SCOPED_TRACE(testing::Message() << "G=" << G << " row=" << s.row_bytes << " k=" << s.num_topk);
      EXPECT_GE(s.mask_words * 32, G);
      for (std::size_t o :
           {s.payload_offset, s.scales_offset, s.topk_offset, s.weights_offset, s.src_token_offset})
        EXPECT_EQ(o % kMdSectionAlignment, 0u);
      expect_disjoint(
          {{"payload", s.payload_offset, s.payload_offset + static_cast<std::size_t>(s.row_bytes)},
           {"scales", s.scales_offset, s.scales_offset + 4u * s.num_scales},
           {"topk", s.topk_offset, s.topk_offset + 4u * s.num_topk},
           {"weights", s.weights_offset, s.weights_offset + 4u * s.num_topk},
           {"src_token", s.src_token_offset, s.src_token_offset + 4},
           {"mask", s.mask_offset, s.mask_offset + 4u * s.mask_words}},
          s.put_bytes_full);
      EXPECT_EQ(s.put_bytes_full % kMdSectionAlignment, 0u);
      EXPECT_LE(s.put_bytes_full, s.stride);
    }
  }
  // ht-dsv3's rows: BF16 14336 + 8 ids + 8 weights + source + mask = 14416 bytes per put.
  EXPECT_EQ(dispatch_slot(8, false, 8).put_bytes_full, 14416u);
  EXPECT_EQ(dispatch_slot(8, true, 8).put_bytes_full, 7472u);  // 7168 + 224 scales + 68
  const MdSlot c = MdSlot::combine(7168, 8);
  EXPECT_EQ(c.weights_offset, 0u);
  EXPECT_EQ(c.put_bytes(false), 32u + 7168u * 4);
  EXPECT_EQ(c.put_bytes(true), 32u + 7168u * 2);  // a prefix of the float32 put
  EXPECT_LE(c.put_bytes_full, c.stride);
}

TEST(InternodeLayout, CountRecordsFitTheirMailboxes) {
  for (int G : {1, 8, 72}) {
    const MdHeader h = MdHeader::make(4, G);
    const MdCountRecord most{kMdMaxChannels, G, kMdMaxLocalExperts};
    EXPECT_EQ(most.ints(), MdCountRecord::capacity_ints(G));
    // The sender's call signature first, then the largest record (md_notify.cu puts both).
    EXPECT_EQ(MdHeader::kRecordSignatureBytes, sizeof(CallSignature));
    EXPECT_LE(MdHeader::kRecordSignatureBytes + sizeof(std::int32_t) * most.ints(), h.record_capacity_bytes);
    EXPECT_EQ(MdHeader::kRecordSignatureBytes % alignof(std::int32_t), 0u);
    EXPECT_EQ(most.per_expert(G - 1, kMdMaxLocalExperts - 1), most.ints() - 1);
    EXPECT_EQ(most.to_rank(kMdMaxChannels - 1, G - 1), most.per_expert(0, 0) - 1);
  }
  // EP2048 (8 x 256) with 256 local experts fits a domain mailbox of the NVLink region.
  const MdDomainRecord ep2048{256, 8, kMdMaxLocalExperts};
  EXPECT_LE(ep2048.ints(), MdDomainRecord::kCapacityInts);
  EXPECT_EQ(ep2048.per_expert(0), ep2048.count(255, 7) + 1);
  // The capacity the planner checks is what the mailbox holds after its header (flag, signature).
  EXPECT_EQ(MdDomainRecord::kOffsetBytes + sizeof(std::int32_t) * MdDomainRecord::kCapacityInts,
            RegionLayout::kMailboxBytes);
}

TEST(InternodeLayout, PeerIndexIsABijection) {
  for (int D : {2, 3, 8, 256}) {
    for (int me = 0; me < D; ++me) {
      std::set<int> seen;
      for (int other = 0; other < D; ++other) {
        if (other == me) continue;
        const int p = md_peer_index(me, other);
        EXPECT_GE(p, 0);
        EXPECT_LT(p, D - 1);
        EXPECT_EQ(md_peer_domain(me, p), other);
        seen.insert(p);
      }
      EXPECT_EQ(static_cast<int>(seen.size()), D - 1);
    }
  }
}

TEST(InternodeLayout, SlotFlagsAreUniqueAndNeverZero) {
  std::set<std::uint64_t> seen;
  for (int op = 0; op < kMdNumOps; ++op)
    for (int p : {0, 1, 254})
      for (int c : {0, 1, kMdMaxChannels - 1})
        for (std::uint64_t k : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4095}, kMdSeqMask - 1}) {
          const std::uint64_t f = md_slot_flag(op, p, c, k);
          EXPECT_NE(f, 0u);
          EXPECT_TRUE(seen.insert(f).second) << op << " " << p << " " << c << " " << k;
        }
}

TEST(InternodeLayout, CreditsBoundTheSlotsInFlight) {
  EXPECT_TRUE(md_may_write(0, 0, 4));
  EXPECT_TRUE(md_may_write(3, 0, 4));
  EXPECT_FALSE(md_may_write(4, 0, 4));  // slot 0 not consumed yet: slot 4 would overwrite it
  EXPECT_TRUE(md_may_write(4, 1, 4));
  EXPECT_TRUE(md_may_write(1000003, 1000000, 4));
  EXPECT_FALSE(md_may_write(1000004, 1000000, 4));
}

// The kernels' credit rule (md_credit_batch): a receiver that has consumed every slot written so
// far has returned enough credits for the sender's next slot, whatever the ring size, the stream's
// length and how many slots the receiver takes at a time, so sender and receiver never both wait.
TEST(InternodeLayout, CreditBatchesNeverStallASender) {
  for (int N = kMdMinRingSlots; N <= 67; ++N) {
    for (std::uint64_t len :
         {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{3} * 67 + 5}) {
      for (std::uint64_t take : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{1000}}) {
        std::uint64_t written = 0, consumed = 0, credits = 0;
        while (consumed < len) {
          while (written < len && md_may_write(written, credits, N)) ++written;
          ASSERT_GT(written, consumed)
              << "N " << N << " len " << len << ": the sender waits on an empty ring";
          const std::uint64_t end = std::min(written, consumed + take);
          for (; consumed < end; ++consumed)
            if (consumed + 1 - credits >= static_cast<std::uint64_t>(md_credit_batch(N)) ||
                consumed + 1 == len)
              credits = consumed + 1;
        }
        EXPECT_EQ(credits, len) << "N " << N << ": every credit returned by the stream's end";
      }
    }
  }
}

TEST(InternodeLayout, ChannelsCoverTheTokensInOrder) {
  for (std::int64_t T : {1, 2, 7, 64, 4096, 4097}) {
    for (int C : {1, 2, 3, 12, 64}) {
      EXPECT_EQ(md_channel_begin(T, 0, C), 0);
      EXPECT_EQ(md_channel_begin(T, C, C), T);
      for (std::int64_t t = 0; t < T; ++t) {
        const int c = md_channel_of(T, t, C);
        ASSERT_GE(t, md_channel_begin(T, c, C)) << T << " " << C << " " << t;
        ASSERT_LT(t, md_channel_begin(T, c + 1, C)) << T << " " << C << " " << t;
      }
    }
  }
}

}  // namespace
}  // namespace epcomm
