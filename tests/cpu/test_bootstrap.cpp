// The bootstrap: the TCP rendezvous across real processes on loopback (fork), its failures
// (a rank that never arrives, a rank that stops answering, mismatched sizes), the callback
// bootstrap, and domain discovery. Connections rank 0 refuses: test_bootstrap_strangers.cpp.
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"
#include "bootstrap/socket.hpp"
#include "cpu/test_bootstrap_common.hpp"

namespace epcomm {
namespace {

using namespace bootstrap_testing;

// ---- TCP bootstrap across processes ---------------------------------------------------------

TEST(TcpBootstrap, FourProcessesAllGatherBroadcastBarrier) {
  const int port = net::pick_free_port();
  constexpr int kWorld = 4;
  auto reports = run_processes({0, 1, 2, 3}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, kWorld, milliseconds(10000)));
    if (b->rank() != rank || b->size() != kWorld) return "wrong rank or size";
    for (std::size_t bytes : {std::size_t{1000}, std::size_t{7}, std::size_t{0}}) {
      const auto mine = block_of(rank, bytes);
      std::vector<unsigned char> out(bytes * kWorld, 0);
      b->all_gather(mine.data(), out.data(), bytes);
      if (std::string s = check_gathered(out, kWorld, bytes); s != "ok") return s;
    }
    // In place: this rank's block already sits in the output.
    std::vector<unsigned char> in_place(64 * kWorld, 0);
    const auto mine = block_of(rank, 64);
    std::memcpy(in_place.data() + rank * 64, mine.data(), 64);
    b->all_gather(in_place.data() + rank * 64, in_place.data(), 64);
    if (std::string s = check_gathered(in_place, kWorld, 64); s != "ok") return "in place: " + s;

    auto data = block_of(rank, 333);
    b->broadcast(data.data(), data.size(), 2);
    if (data != block_of(2, 333)) return "broadcast from rank 2 differs";
    b->barrier();
    const DomainInfo d = discover_domains(*b, local_host_identity());
    if (d.num_domains != 1 || d.ranks_per_domain != kWorld || d.local_index != rank) return "domains differ";
    return "ok";
  });
  expect_all_ok(reports);
}

TEST(TcpBootstrap, LargeAllGather64MiB) {
  const int port = net::pick_free_port();
  constexpr std::size_t kBytes = std::size_t{64} << 20;
  auto reports = run_processes({0, 1}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 2, milliseconds(20000)));
    const auto mine = block_of(rank, kBytes);
    std::vector<unsigned char> out(2 * kBytes, 0);
    b->all_gather(mine.data(), out.data(), kBytes);
    return check_gathered(out, 2, kBytes);
  });
  expect_all_ok(reports);
}

TEST(TcpBootstrap, SingleRankNeedsNoNetwork) {
  auto b = make_tcp_bootstrap(options(/*port=*/1, 0, 1, milliseconds(100)));
  const auto mine = block_of(0, 16);
  std::vector<unsigned char> out(16);
  b->all_gather(mine.data(), out.data(), 16);
  EXPECT_EQ(out, mine);
  b->barrier();
  b->broadcast(out.data(), out.size(), 0);
  EXPECT_EQ(out, mine);
}

TEST(TcpBootstrap, RejectsBadOptions) {
  auto expect_invalid = [](const TcpBootstrapOptions& o, const char* needle) {
    try {
      make_tcp_bootstrap(o);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
    }
  };
  expect_invalid(options(29500, 4, 4, milliseconds(100)), "rank");
  expect_invalid(options(29500, 0, 0, milliseconds(100)), "world_size");
  expect_invalid(options(0, 0, 2, milliseconds(100)), "master_port");
  expect_invalid(options(29500, 0, 2, milliseconds(0)), "timeout");
}

TEST(TcpBootstrap, PeerThatNeverArrivesTimesOutNamingIt) {
  const int port = net::pick_free_port();
  const auto start = Clock::now();
  // World of 3, but rank 2 never starts.
  auto reports = run_processes({0, 1}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 3, milliseconds(1500)));
    return "connected without rank 2";
  });
  const auto elapsed = Clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(4));
  for (const ProcessReport& r : reports) {
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.text.rfind("error timeout: connect: rank " + std::to_string(r.rank), 0), 0u) << r.text;
    EXPECT_NE(r.text.find("never arrived: rank 2"), std::string::npos) << r.text;
  }
}

TEST(TcpBootstrap, MissingRootTimesOutNamingIt) {
  const int port = net::pick_free_port();
  auto reports = run_processes({1}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 2, milliseconds(500)));
    return "connected without rank 0";
  });
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].text.rfind("error timeout: connect: rank 1", 0), 0u) << reports[0].text;
  EXPECT_NE(reports[0].text.find("rank 0 at 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << reports[0].text;
}

TEST(TcpBootstrap, PeerThatStopsAnsweringTimesOutNamingIt) {
  const int port = net::pick_free_port();
  auto reports = run_processes({0, 1, 2}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 3, milliseconds(800)));
    const auto mine = block_of(rank, 8);
    std::vector<unsigned char> out(24);
    if (rank == 2) std::this_thread::sleep_for(milliseconds(1500));  // late to the all-gather
    b->all_gather(mine.data(), out.data(), 8);
    return "all_gather completed";
  });
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].text,
            "error timeout: all_gather: rank 0 timed out after 800 ms waiting for the blocks of rank 2");
  EXPECT_EQ(reports[1].text.rfind("error timeout: all_gather: rank 1 stopped because rank 0 reported", 0), 0u)
      << reports[1].text;
  EXPECT_NE(reports[1].text.find("rank 2"), std::string::npos) << reports[1].text;
  EXPECT_EQ(reports[2].text.rfind("error ", 0), 0u) << reports[2].text;  // its peers are gone
}

TEST(TcpBootstrap, SizeMismatchNamesBothSizes) {
  const int port = net::pick_free_port();
  auto reports = run_processes({0, 1, 2}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 3, milliseconds(5000)));
    const std::size_t bytes = rank == 1 ? 16 : 8;
    const auto mine = block_of(rank, bytes);
    std::vector<unsigned char> out(3 * bytes);
    b->all_gather(mine.data(), out.data(), bytes);
    return "all_gather completed";
  });
  const std::string expected =
      "all_gather: size mismatch: rank 0 contributes 8 bytes but rank 1 contributes 16 bytes";
  EXPECT_EQ(reports[0].text.rfind("error bootstrap: " + expected, 0), 0u) << reports[0].text;
  for (int r : {1, 2}) {
    EXPECT_EQ(reports[r].text.rfind("error bootstrap:", 0), 0u) << reports[r].text;
    EXPECT_NE(reports[r].text.find(expected), std::string::npos) << reports[r].text;
  }
}

TEST(TcpBootstrap, UnusableAfterAFailure) {
  const int port = net::pick_free_port();
  auto reports = run_processes({0, 1}, [&](int rank) -> std::string {
    auto b = make_tcp_bootstrap(options(port, rank, 2, milliseconds(5000)));
    std::vector<unsigned char> in(rank + 1), out(2 * (rank + 1));
    try {
      b->all_gather(in.data(), out.data(), in.size());
      return "mismatched all_gather completed";
    } catch (const Error&) {
    }
    try {
      b->barrier();
      return "barrier after a failure completed";
    } catch (const Error& e) {
      return e.message().find("unusable after an earlier failure") != std::string::npos ? "ok" : e.message();
    }
  });
  expect_all_ok(reports);
}

// ---- the callback bootstrap (threads of one process) ----------------------------------------

// An all-gather among `n` threads: rank r's callback is for_rank(r).
class ThreadAllGather {
 public:
  explicit ThreadAllGather(int n) : slots_(n), sync_(n) {}

  AllGatherFn for_rank(int rank) {
    return [this, rank](const void* in, void* out, std::size_t bytes) {
      const auto* p = static_cast<const unsigned char*>(in);
      slots_[rank].assign(p, p + bytes);
      sync_.arrive_and_wait();
      for (std::size_t r = 0; r < slots_.size(); ++r) {
        std::memcpy(static_cast<unsigned char*>(out) + r * bytes, slots_[r].data(),
                    std::min(bytes, slots_[r].size()));
      }
      sync_.arrive_and_wait();  // nobody overwrites a slot another thread still reads
    };
  }

 private:
  std::vector<std::vector<unsigned char>> slots_;
  std::barrier<> sync_;
};

// Runs body(rank, bootstrap) on `n` threads sharing one ThreadAllGather.
void run_threads(int n, const std::function<void(int, Bootstrap&)>& body) {
  ThreadAllGather group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      auto b = make_callback_bootstrap(r, n, group.for_rank(r));
      body(r, *b);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(CallbackBootstrap, AllGatherBroadcastBarrier) {
  constexpr int kWorld = 3;
  std::vector<std::string> results(kWorld);
  run_threads(kWorld, [&](int rank, Bootstrap& b) {
    const auto mine = block_of(rank, 100);
    std::vector<unsigned char> out(100 * kWorld);
    b.all_gather(mine.data(), out.data(), 100);
    std::string s = check_gathered(out, kWorld, 100);
    auto data = block_of(rank, 50);
    b.broadcast(data.data(), data.size(), 1);
    if (data != block_of(1, 50)) s = "broadcast differs";
    b.barrier();
    results[rank] = s;
  });
  for (const std::string& s : results) EXPECT_EQ(s, "ok");
}

TEST(CallbackBootstrap, ChecksArgumentsAndWrapsCallbackErrors) {
  auto noop = [](const void*, void*, std::size_t) {};
  EXPECT_THROW(make_callback_bootstrap(2, 2, noop), Error);
  EXPECT_THROW(make_callback_bootstrap(0, 0, noop), Error);
  EXPECT_THROW(make_callback_bootstrap(0, 1, AllGatherFn()), Error);
  auto b = make_callback_bootstrap(0, 1, [](const void*, void*, std::size_t) {
    throw std::runtime_error("torch.distributed is not initialized");
  });
  try {
    b->barrier();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBootstrap);
    EXPECT_NE(e.message().find("torch.distributed is not initialized"), std::string::npos);
  }
  unsigned char byte = 0;
  EXPECT_THROW(b->broadcast(&byte, 1, 1), Error);  // root out of range
}

// ---- domain discovery -----------------------------------------------------------------------

struct DomainOutcome {
  DomainInfo info;
  std::string error;  // empty on success
};

std::vector<DomainOutcome> discover(const std::vector<std::string>& identities) {
  std::vector<DomainOutcome> outcomes(identities.size());
  run_threads(static_cast<int>(identities.size()), [&](int rank, Bootstrap& b) {
    try {
      outcomes[rank].info = discover_domains(b, identities[rank]);
    } catch (const Error& e) {
      outcomes[rank].error = describe_error(e);
    }
  });
  return outcomes;
}

TEST(DiscoverDomains, OneHostIsOneDomain) {
  const auto outcomes = discover({"hostA", "hostA", "hostA", "hostA"});
  for (int r = 0; r < 4; ++r) {
    ASSERT_EQ(outcomes[r].error, "");
    EXPECT_EQ(outcomes[r].info.num_domains, 1);
    EXPECT_EQ(outcomes[r].info.ranks_per_domain, 4);
    EXPECT_EQ(outcomes[r].info.domain, 0);
    EXPECT_EQ(outcomes[r].info.local_index, r);
    EXPECT_EQ(outcomes[r].info.domain_of_rank, (std::vector<int>{0, 0, 0, 0}));
  }
}

TEST(DiscoverDomains, TwoHostsOfTwoRanks) {
  const auto outcomes = discover({"hostA", "hostA", "hostB", "hostB"});
  for (int r = 0; r < 4; ++r) {
    ASSERT_EQ(outcomes[r].error, "");
    EXPECT_EQ(outcomes[r].info.num_domains, 2);
    EXPECT_EQ(outcomes[r].info.ranks_per_domain, 2);
    EXPECT_EQ(outcomes[r].info.domain, r / 2);
    EXPECT_EQ(outcomes[r].info.local_index, r % 2);
    EXPECT_EQ(outcomes[r].info.domain_of_rank, (std::vector<int>{0, 0, 1, 1}));
  }
}

TEST(DiscoverDomains, NonContiguousHostsNameTheOffendingRanks) {
  const auto outcomes = discover({"hostA", "hostB", "hostA", "hostB"});
  for (const DomainOutcome& o : outcomes) {
    EXPECT_EQ(
        o.error.rfind("bootstrap: discover_domains: the ranks of each host must be a contiguous block", 0),
        0u)
        << o.error;
    EXPECT_NE(o.error.find("offending ranks 1, 2"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("host 'hostA' has ranks 0,2"), std::string::npos) << o.error;
  }
}

TEST(DiscoverDomains, UnequalHostsAreAnError) {
  const auto outcomes = discover({"hostA", "hostA", "hostA", "hostB"});
  for (const DomainOutcome& o : outcomes) {
    EXPECT_NE(o.error.find("different numbers of ranks"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("host 'hostB' has ranks 3"), std::string::npos) << o.error;
  }
}

TEST(DiscoverDomains, LocalHostIdentityIsStableAndNonEmpty) {
  const std::string id = local_host_identity();
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(id, local_host_identity());
}

}  // namespace
}  // namespace epcomm
