// Recovery without restart (issue 22): the survivors of a TCP bootstrap whose peer died make a new
// one among themselves (make_survivor_bootstrap), across real processes on loopback; the options'
// arithmetic and checks; a stale peer of the old group is refused by the new rendezvous.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bootstrap/socket.hpp"
#include "cpu/expect_error.hpp"
#include "cpu/test_bootstrap_common.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/error.hpp"

namespace epcomm {
namespace {

using namespace bootstrap_testing;

TcpBootstrapOptions old_options(int rank) {
  TcpBootstrapOptions o = options(29500, rank, 4, milliseconds(1000));
  o.job_token = "job-7";
  return o;
}

// ---- the new options (no sockets) -------------------------------------------------------------

TEST(SurvivorOptions, RanksAreDenseInTheOldOrder) {
  const SurvivorGroup group{.survivors = {0, 1, 3}};
  const TcpBootstrapOptions r3 = survivor_bootstrap_options(old_options(3), group);
  EXPECT_EQ(r3.rank, 2);
  EXPECT_EQ(r3.world_size, 3);
  EXPECT_EQ(survivor_bootstrap_options(old_options(0), group).rank, 0);
  EXPECT_EQ(survivor_bootstrap_options(old_options(1), group).rank, 1);
  EXPECT_EQ(r3.master_addr, "127.0.0.1");
  EXPECT_EQ(r3.timeout, milliseconds(1000));
}

TEST(SurvivorOptions, NewPortAndATokenNoOldPeerPresents) {
  const TcpBootstrapOptions first = survivor_bootstrap_options(old_options(1), {.survivors = {1, 2, 3}});
  EXPECT_EQ(first.master_port, 29501);  // old port + attempt
  EXPECT_EQ(first.rank, 0);             // old rank 1 listens now
  EXPECT_NE(first.job_token, "job-7");
  EXPECT_EQ(first.job_token.rfind("job-7:attempt=1:survivors=", 0), 0u) << first.job_token;
  const TcpBootstrapOptions second =
      survivor_bootstrap_options(old_options(1), {.survivors = {1, 2, 3}, .attempt = 2});
  EXPECT_EQ(second.master_port, 29502);
  EXPECT_NE(second.job_token, first.job_token);
  // Survivors that counted another group get another token: rank 0 refuses them.
  EXPECT_NE(survivor_bootstrap_options(old_options(1), {.survivors = {1, 3}}).job_token, first.job_token);
  // An explicit host and port win.
  const TcpBootstrapOptions moved = survivor_bootstrap_options(
      old_options(1), {.survivors = {1, 2}, .master_addr = "10.0.0.2", .master_port = 4000});
  EXPECT_EQ(moved.master_addr, "10.0.0.2");
  EXPECT_EQ(moved.master_port, 4000);
}

TEST(SurvivorOptions, RefusesBadGroupsNamingTheField) {
  test::expect_arg_error(
      [&] {
        survivor_bootstrap_options(old_options(2), {.survivors = {0, 1, 3}});
      },
      "survivors: this rank (old rank 2) is not among them");
  test::expect_arg_error(
      [&] {
        survivor_bootstrap_options(old_options(0), {.survivors = {0, 3, 1}});
      },
      "survivors: expected ascending ranks");
  test::expect_arg_error(
      [&] {
        survivor_bootstrap_options(old_options(0), {.survivors = {0, 4}});
      },
      "survivors: expected old ranks in [0, 4)");
  test::expect_arg_error([&] { survivor_bootstrap_options(old_options(0), {.survivors = {}}); }, "survivors");
  test::expect_arg_error(
      [&] {
        survivor_bootstrap_options(old_options(0), {.survivors = {0, 1}, .attempt = 0});
      },
      "attempt");
  TcpBootstrapOptions high = old_options(0);
  high.master_port = 65535;
  test::expect_arg_error([&] { survivor_bootstrap_options(high, {.survivors = {0, 1}}); }, "master_port");
}

// ---- across processes -------------------------------------------------------------------------

// A free port other than `taken` (the old group's rank 0 may still hold its own).
int another_free_port(int taken) {
  int port = net::pick_free_port();
  while (port == taken) port = net::pick_free_port();
  return port;
}

// Four ranks gather once; then rank `dead` kills itself (SIGKILL). The others' next gather fails
// with an epcomm::Error (no hang); they rebuild among themselves on a new port and gather again,
// each block in the new rank order.
void survive_a_killed_rank(int dead) {
  const int port = net::pick_free_port();
  const int new_port = another_free_port(port);
  std::vector<int> survivors;
  for (int r = 0; r < 4; ++r)
    if (r != dead) survivors.push_back(r);
  auto reports = run_processes({0, 1, 2, 3}, [&](int rank) -> std::string {
    const TcpBootstrapOptions opts = options(port, rank, 4, milliseconds(5000));
    auto old = make_tcp_bootstrap(opts);
    std::vector<unsigned char> out(4 * 8);
    old->all_gather(block_of(rank, 8).data(), out.data(), 8);
    if (check_gathered(out, 4, 8) != "ok") return "first gather: " + check_gathered(out, 4, 8);
    if (rank == dead) ::raise(SIGKILL);
    try {
      old->all_gather(block_of(rank, 8).data(), out.data(), 8);
      return "the old group gathered without rank " + std::to_string(dead);
    } catch (const Error&) {
      // expected: the old group is broken
    }
    auto next = make_survivor_bootstrap(opts, {.survivors = survivors, .master_port = new_port});
    if (next->size() != 3) return "new size " + std::to_string(next->size());
    std::vector<unsigned char> gathered(3 * 16);
    next->all_gather(block_of(next->rank(), 16).data(), gathered.data(), 16);
    next->barrier();
    return check_gathered(gathered, 3, 16);
  });
  for (const ProcessReport& r : reports) {
    if (r.rank == dead) {
      EXPECT_EQ(r.exit_code, -1) << "rank " << r.rank << " was to die: " << r.text;
      continue;
    }
    EXPECT_EQ(r.exit_code, 0) << "rank " << r.rank;
    EXPECT_EQ(r.text, "ok") << "rank " << r.rank;
  }
}

TEST(SurvivorBootstrap, SurvivorsOfAKilledRankCarryOn) {
  survive_a_killed_rank(2);
}
TEST(SurvivorBootstrap, SurvivorsOfAKilledRootCarryOn) {
  survive_a_killed_rank(0);  // old rank 1 listens for the new group
}

// Old rank 2 is left out (stalled, say) but still alive: when it knocks on the new rendezvous with
// the old group's token, claiming a rank the new group has, it is refused and told why; the
// survivors complete without it.
TEST(SurvivorBootstrap, AStalePeerOfTheOldGroupIsRefused) {
  const int port = net::pick_free_port();
  const int new_port = another_free_port(port);
  auto reports = run_processes({0, 1, 2, 3}, [&](int rank) -> std::string {
    TcpBootstrapOptions opts = options(port, rank, 4, milliseconds(8000));
    opts.job_token = "job-stale";
    auto old = make_tcp_bootstrap(opts);
    if (rank == 2) {
      TcpBootstrapOptions stale = options(new_port, 2, 3, milliseconds(8000));
      stale.job_token = "job-stale";
      auto b = make_tcp_bootstrap(stale);
      return "the stale peer got in";
    }
    // The real new rank 2 (old rank 3) arrives after the stale one knocked.
    if (rank == 3) std::this_thread::sleep_for(milliseconds(1000));
    auto next = make_survivor_bootstrap(opts, {.survivors = {0, 1, 3}, .master_port = new_port});
    std::vector<unsigned char> gathered(3 * 8);
    next->all_gather(block_of(next->rank(), 8).data(), gathered.data(), 8);
    return check_gathered(gathered, 3, 8);
  });
  for (const ProcessReport& r : reports) {
    EXPECT_EQ(r.exit_code, 0) << "rank " << r.rank;
    if (r.rank == 2)
      EXPECT_EQ(r.text.rfind("error bootstrap:", 0), 0u) << r.text;
    else
      EXPECT_EQ(r.text, "ok") << "rank " << r.rank;
  }
}

}  // namespace
}  // namespace epcomm
