// Domain discovery for the multi-domain mode (bootstrap.hpp: discover_domains, plan_domains;
// BufferOptions::ranks_per_domain, EPCOMM_RANKS_PER_DOMAIN): one domain per host by default, or
// domains of G that split each host, for many (G, D) up to 8 x 256, and every refusal naming its
// argument. Large groups run through a capture-and-replay bootstrap (no threads): each rank's
// record is captured by running discover_domains on it, then replayed to the rank under test.
#include <gtest/gtest.h>

#include <barrier>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cpu/expect_error.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "scoped_env.hpp"

namespace epcomm {
namespace {

using test::expect_error;
using test::ScopedEnv;

// ---- fakes -----------------------------------------------------------------------------------

// Records what a rank contributes to its first all-gather, then stops the caller.
struct Captured {};
class CaptureBootstrap final : public Bootstrap {
 public:
  CaptureBootstrap(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_gather(const void* in, void*, std::size_t bytes) override {
    const auto* p = static_cast<const unsigned char*>(in);
    record.assign(p, p + bytes);
    throw Captured{};
  }
  std::vector<unsigned char> record;

 private:
  int rank_, size_;
};

// Answers an all-gather with the records captured from every rank.
class ReplayBootstrap final : public Bootstrap {
 public:
  ReplayBootstrap(int rank, const std::vector<std::vector<unsigned char>>& records)
      : rank_(rank), records_(records) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(records_.size()); }
  void all_gather(const void*, void* out, std::size_t bytes) override {
    for (std::size_t r = 0; r < records_.size(); ++r) {
      ASSERT_EQ(records_[r].size(), bytes);
      std::memcpy(static_cast<unsigned char*>(out) + r * bytes, records_[r].data(), bytes);
    }
  }

 private:
  int rank_;
  const std::vector<std::vector<unsigned char>>& records_;
};

// A group whose rank r runs on host identities[r] and asks for ranks_per_domain[r].
struct Group {
  std::vector<std::string> identities;
  std::vector<int> ranks_per_domain;

  std::vector<std::vector<unsigned char>> records() const {
    std::vector<std::vector<unsigned char>> out;
    for (std::size_t r = 0; r < identities.size(); ++r) {
      CaptureBootstrap capture(static_cast<int>(r), static_cast<int>(identities.size()));
      try {
        discover_domains(capture, identities[r], ranks_per_domain[r]);
      } catch (const Captured&) {
      }
      out.push_back(capture.record);
    }
    return out;
  }
};

// `hosts` hosts of `per_host` ranks each; every rank asks for G.
Group hosts_of(int hosts, int per_host, int G) {
  Group g;
  for (int h = 0; h < hosts; ++h)
    for (int r = 0; r < per_host; ++r) g.identities.push_back("host-" + std::to_string(h));
  g.ranks_per_domain.assign(g.identities.size(), G);
  return g;
}

struct Outcome {
  DomainInfo info;
  std::string error;  // empty on success
  ErrorCategory category = ErrorCategory::kInternal;
};

Outcome discover_on(const Group& group, const std::vector<std::vector<unsigned char>>& records, int rank) {
  Outcome o;
  ReplayBootstrap replay(rank, records);
  try {
    o.info = discover_domains(replay, group.identities[static_cast<std::size_t>(rank)],
                              group.ranks_per_domain[static_cast<std::size_t>(rank)]);
  } catch (const Error& e) {
    o.error = e.message();
    o.category = e.category();
  }
  return o;
}

// Ranks worth checking in a group of R: all of a small one, the edges and a stride of a large one.
std::vector<int> sample_ranks(int R, int G) {
  std::vector<int> ranks;
  for (int r = 0; r < R; ++r)
    if (R <= 160 || r % 97 == 0 || r % G == 0 || r % G == G - 1 || r >= R - 2) ranks.push_back(r);
  return ranks;
}

void expect_domains(const Group& group, int G, int D) {
  const auto records = group.records();
  const int R = G * D;
  for (int rank : sample_ranks(R, G)) {
    const Outcome o = discover_on(group, records, rank);
    ASSERT_EQ(o.error, "") << "rank " << rank;
    EXPECT_EQ(o.info.ranks_per_domain, G);
    EXPECT_EQ(o.info.num_domains, D);
    EXPECT_EQ(o.info.domain, rank / G);
    EXPECT_EQ(o.info.local_index, rank % G);
    ASSERT_EQ(o.info.domain_of_rank.size(), static_cast<std::size_t>(R));
    for (int r = 0; r < R; ++r) ASSERT_EQ(o.info.domain_of_rank[static_cast<std::size_t>(r)], r / G) << r;
  }
}

// Every rank of the group fails alike, with `category` and every needle in its message.
void expect_refused(const Group& group, ErrorCategory category, const std::vector<std::string>& needles) {
  const auto records = group.records();
  for (int rank : sample_ranks(static_cast<int>(group.identities.size()), 1)) {
    const Outcome o = discover_on(group, records, rank);
    ASSERT_NE(o.error, "") << "rank " << rank << " accepted the group";
    EXPECT_EQ(o.category, category) << o.error;
    for (const std::string& needle : needles) EXPECT_NE(o.error.find(needle), std::string::npos) << o.error;
  }
}

// ---- one domain per host (discovered) ----------------------------------------------------------

TEST(InternodeDomains, OneDomainPerHostForManyShapes) {
  const std::vector<std::pair<int, int>> shapes = {{8, 16}, {8, 256}, {4, 3}, {1, 64}, {72, 2}, {8, 1}};
  for (const auto& [G, D] : shapes) {
    SCOPED_TRACE(testing::Message() << G << " x " << D);
    expect_domains(hosts_of(D, G, 0), G, D);
  }
}

// ---- G given: hosts split into several domains ----------------------------------------------

TEST(InternodeDomains, HostsOfEightSplitIntoSmallerDomains) {
  expect_domains(hosts_of(1, 8, 4), 4, 2);  // one machine of 8 as 2 x 4
  expect_domains(hosts_of(1, 8, 2), 2, 4);  // as 4 x 2
  expect_domains(hosts_of(1, 8, 1), 1, 8);
  expect_domains(hosts_of(4, 8, 2), 2, 16);  // four machines as 16 x 2
  expect_domains(hosts_of(1, 4, 2), 2, 2);   // how the tests run: 4 processes on one GPU as 2 x 2
}

TEST(InternodeDomains, GivenGForManyShapes) {
  const std::vector<std::pair<int, int>> shapes = {{8, 16}, {8, 256}, {4, 3}, {1, 64}, {72, 2}};
  for (const auto& [G, D] : shapes) {
    SCOPED_TRACE(testing::Message() << G << " x " << D);
    expect_domains(hosts_of(D, G, G), G, D);  // G = the host size: the same as discovery
  }
}

TEST(InternodeDomains, GivenGAcceptsHostsOfDifferentSizes) {
  // Hosts of 8 and 4 ranks split into domains of 4: 3 domains.
  Group g = hosts_of(1, 8, 4);
  for (int r = 0; r < 4; ++r) g.identities.push_back("host-small");
  g.ranks_per_domain.assign(g.identities.size(), 4);
  expect_domains(g, 4, 3);
  // G = 1 accepts any order of hosts: every domain is one rank.
  const Group interleaved{{"a", "b", "a", "b"}, {1, 1, 1, 1}};
  expect_domains(interleaved, 1, 4);
}

// ---- refusals, each naming its argument --------------------------------------------------------

TEST(InternodeDomains, GThatDoesNotDivideAHostIsRefused) {
  expect_refused(hosts_of(2, 8, 3), ErrorCategory::kInvalidArgument,
                 {"ranks_per_domain=3 must divide the ranks of every host", "host 'host-0' has 8 ranks (0, 1, 2"});
  expect_refused(hosts_of(1, 12, 8), ErrorCategory::kInvalidArgument, {"ranks_per_domain=8", "has 12 ranks"});
}

TEST(InternodeDomains, DomainSpanningTwoHostsIsRefused) {
  // Hosts a a b b a a with G = 2 are fine (each pair on one host); a a b a a b puts ranks 2, 3 on
  // two hosts although G divides both hosts' ranks.
  const Group fine{{"a", "a", "b", "b", "a", "a"}, std::vector<int>(6, 2)};
  expect_domains(fine, 2, 3);
  const Group spans{{"a", "a", "b", "a", "a", "b"}, std::vector<int>(6, 2)};
  expect_refused(spans, ErrorCategory::kBootstrap, {"ranks_per_domain=2: domain 1 (ranks 2-3) spans hosts 'b' and 'a'"});
}

TEST(InternodeDomains, GOutOfRangeIsRefusedBeforeAnyExchange) {
  for (int G : {-1, 73, 1000}) {
    CaptureBootstrap capture(0, 2);
    expect_error([&] { discover_domains(capture, "host", G); }, "ranks_per_domain must be 0 (one domain per host) or in [1, 72]",
                 ErrorCategory::kInvalidArgument);
    EXPECT_TRUE(capture.record.empty()) << "exchanged before refusing " << G;
  }
  expect_error([] { plan_domains({"a"}, 0, 73); }, "got 73", ErrorCategory::kInvalidArgument);
}

TEST(InternodeDomains, RanksThatDisagreeOnGAreToldWhoAndWhat) {
  Group g = hosts_of(1, 8, 4);
  g.ranks_per_domain[5] = 2;
  expect_refused(g, ErrorCategory::kInvalidArgument,
                 {"ranks_per_domain must be the same on every rank; rank 0 passed 4, rank 5 passed 2"});
  g.ranks_per_domain[5] = 0;  // one rank left at "discover"
  expect_refused(g, ErrorCategory::kInvalidArgument, {"rank 0 passed 4, rank 5 passed 0"});
}

TEST(InternodeDomains, HostBeyondSeventyTwoRanksNamesTheOption) {
  expect_refused(hosts_of(1, 80, 0), ErrorCategory::kUnsupported,
                 {"a host holds 80 ranks, more than the 72", "ranks_per_domain", "EPCOMM_RANKS_PER_DOMAIN"});
  expect_domains(hosts_of(1, 80, 8), 8, 10);  // the option makes it usable
}

TEST(InternodeDomains, UnequalHostsWithoutGSuggestTheOption) {
  Group g = hosts_of(1, 8, 0);
  for (int r = 0; r < 4; ++r) g.identities.push_back("host-small");
  g.ranks_per_domain.assign(g.identities.size(), 0);
  expect_refused(g, ErrorCategory::kBootstrap, {"different numbers of ranks", "ranks_per_domain"});
}

TEST(InternodeDomains, PlanDomainsChecksItsArguments) {
  expect_error([] { plan_domains({}, 0); }, "identity_of_rank must name at least one rank",
               ErrorCategory::kInvalidArgument);
  expect_error([] { plan_domains({"a", "a"}, 2); }, "rank must be in [0, 2), got 2", ErrorCategory::kInvalidArgument);
}

// ---- the real exchange: callback bootstraps on threads -------------------------------------------

TEST(InternodeDomains, ThreadsOfOneHostAsTwoByFourAndFourByTwo) {
  for (const int G : {4, 2}) {
    constexpr int kRanks = 8;
    std::vector<std::vector<unsigned char>> slots(kRanks);
    std::barrier<> sync(kRanks);
    std::vector<Outcome> outcomes(kRanks);
    std::vector<std::thread> threads;
    for (int r = 0; r < kRanks; ++r) {
      threads.emplace_back([&, r] {
        auto b = make_callback_bootstrap(r, kRanks, [&, r](const void* in, void* out, std::size_t bytes) {
          const auto* p = static_cast<const unsigned char*>(in);
          slots[static_cast<std::size_t>(r)].assign(p, p + bytes);
          sync.arrive_and_wait();
          for (int q = 0; q < kRanks; ++q)
            std::memcpy(static_cast<unsigned char*>(out) + static_cast<std::size_t>(q) * bytes,
                        slots[static_cast<std::size_t>(q)].data(), bytes);
          sync.arrive_and_wait();
        });
        try {
          outcomes[static_cast<std::size_t>(r)].info = discover_domains(*b, local_host_identity(), G);
        } catch (const Error& e) {
          outcomes[static_cast<std::size_t>(r)].error = e.message();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < kRanks; ++r) {
      const Outcome& o = outcomes[static_cast<std::size_t>(r)];
      ASSERT_EQ(o.error, "");
      EXPECT_EQ(o.info.ranks_per_domain, G);
      EXPECT_EQ(o.info.num_domains, kRanks / G);
      EXPECT_EQ(o.info.domain, r / G);
      EXPECT_EQ(o.info.local_index, r % G);
    }
  }
}

// ---- the Buffer option and its environment override -----------------------------------------------

std::shared_ptr<Bootstrap> no_exchange_bootstrap(int* exchanges) {
  return make_callback_bootstrap(0, 2, [exchanges](const void*, void*, std::size_t) {
    ++*exchanges;
    throw Error(ErrorCategory::kBootstrap, "unexpected exchange", __FILE__, __LINE__);
  });
}

TEST(InternodeDomains, BufferRefusesABadGBeforeAnyExchange) {
  const ScopedEnv unset("EPCOMM_RANKS_PER_DOMAIN", std::nullopt);
  int exchanges = 0;
  for (int G : {-1, 73}) {
    BufferOptions options;
    options.ranks_per_domain = G;
    expect_error([&] { Buffer buffer(no_exchange_bootstrap(&exchanges), options); },
                 "ranks_per_domain: expected 0 (one domain per host) or 1 to 72, got " + std::to_string(G),
                 ErrorCategory::kInvalidArgument);
  }
  {
    const ScopedEnv bad("EPCOMM_RANKS_PER_DOMAIN", "four");
    expect_error([&] { Buffer buffer(no_exchange_bootstrap(&exchanges), BufferOptions{}); },
                 "EPCOMM_RANKS_PER_DOMAIN", ErrorCategory::kInvalidArgument);
  }
  {
    const ScopedEnv too_big("EPCOMM_RANKS_PER_DOMAIN", "100");
    expect_error([&] { Buffer buffer(no_exchange_bootstrap(&exchanges), BufferOptions{}); },
                 "EPCOMM_RANKS_PER_DOMAIN='100' is out of range", ErrorCategory::kInvalidArgument);
  }
  EXPECT_EQ(exchanges, 0);
}

}  // namespace
}  // namespace epcomm
