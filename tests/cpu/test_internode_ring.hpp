// A CPU model of one multi-domain ring stream (internode/md_layout.hpp): a sender writes items into
// a receiver's ring through puts that land in any order (each put's data before its flag, which is
// what a put with signal guarantees), the receiver drains the slots in order by their flags and
// returns credits by adds that also land in any order. Slot and flag memory is kept by byte offset
// in the receiver's region and outlives operations, as on the GPU, so stale flags of earlier
// operations (other layouts, other streams) sit where a new operation looks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "internode/md_layout.hpp"

namespace epcomm::internode_testing {

// One rank's symmetric region as far as rings go: what lies at each offset.
template <typename Item>
struct RegionMemory {
  std::unordered_map<std::size_t, std::uint64_t> flags;
  std::unordered_map<std::size_t, Item> slots;
};

// A stream's cumulative counters (the header's kMdSent, kMdCredits at the sender, kMdConsumed at
// the receiver); they persist across operations and are never reset.
struct StreamCounters {
  std::uint64_t sent = 0, credits = 0, consumed = 0;
};

// Moves `items` through stream (peer, channel) of `rings` in `receiver`'s memory. Returns what the
// receiver consumed, in order. The interleaving of writes, landings, reads and credits is random;
// `credit_batch`: slots the receiver consumes between two credit adds (at most N / 2: a receiver
// holding back a whole ring's credits would wait for a slot its sender may not write).
template <typename Item>
std::vector<Item> deliver(const std::vector<Item>& items, const MdRings& rings, int op, int peer, int channel,
                          RegionMemory<Item>& receiver, StreamCounters& counters, std::mt19937& rng,
                          int credit_batch = 2) {
  struct Put {
    std::size_t slot, flag;
    Item item;
    std::uint64_t flag_value;
  };
  std::vector<Put> puts;                // issued, not landed
  std::vector<std::uint64_t> credits;   // added by the receiver, not landed
  std::vector<Item> got;
  EXPECT_EQ(counters.consumed, counters.sent) << "the ring is empty between operations";
  EXPECT_EQ(counters.credits, counters.sent) << "every credit of earlier operations came back";
  const std::uint64_t first = counters.sent, end = counters.sent + items.size();
  std::uint64_t unreturned = 0;
  std::uniform_int_distribution<int> action(0, 3);
  for (long step = 0; got.size() < items.size() || !credits.empty(); ++step) {
    if (step > 100000 + 100 * static_cast<long>(items.size())) {
      ADD_FAILURE() << "stream (" << peer << ", " << channel << ") stopped moving: " << got.size() << " of "
                    << items.size() << " consumed";
      return got;
    }
    switch (action(rng)) {
      case 0:  // the sender writes its next slot if the credits allow
        if (counters.sent < end && md_may_write(counters.sent, counters.credits, rings.ring_slots)) {
          const std::uint64_t k = counters.sent++;
          puts.push_back({rings.slot(peer, channel, k), rings.flag(peer, channel, k),
                          items[static_cast<std::size_t>(k - first)], md_slot_flag(op, peer, channel, k)});
        }
        break;
      case 1:  // a put lands: its data, then its flag
        if (!puts.empty()) {
          const std::size_t i = std::uniform_int_distribution<std::size_t>(0, puts.size() - 1)(rng);
          receiver.slots[puts[i].slot] = puts[i].item;
          receiver.flags[puts[i].flag] = puts[i].flag_value;
          puts.erase(puts.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
      case 2: {  // the receiver reads its next slot once its flag says so
        const std::uint64_t k = counters.consumed;
        if (k >= end) break;
        const auto flag = receiver.flags.find(rings.flag(peer, channel, k));
        if (flag == receiver.flags.end() || flag->second != md_slot_flag(op, peer, channel, k)) break;
        got.push_back(receiver.slots.at(rings.slot(peer, channel, k)));
        ++counters.consumed;
        if (++unreturned >= static_cast<std::uint64_t>(credit_batch) || counters.consumed == end) {
          credits.push_back(unreturned);
          unreturned = 0;
        }
        break;
      }
      default:  // a credit add lands at the sender
        if (!credits.empty()) {
          const std::size_t i = std::uniform_int_distribution<std::size_t>(0, credits.size() - 1)(rng);
          counters.credits += credits[i];
          credits.erase(credits.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
    }
  }
  EXPECT_EQ(counters.sent, end);
  EXPECT_EQ(counters.credits, end) << "every slot's credit came back";
  return got;
}

}  // namespace epcomm::internode_testing
