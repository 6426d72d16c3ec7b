// The fault driver's process runner (tools/faults/watchdog.cpp) over shell commands: a rank that
// ends is reported with its ending, a hung rank is stopped at its bound, a killed peer does not stop
// the survivor, and the ranks get epcomm-run's environment; and the memory readers (mem_probe.cpp).
// The built epcomm-faults skips without a GPU, and fails so under EPCOMM_REQUIRE_GPU=1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "epcomm/error.hpp"
#include "faults/mem_probe.hpp"
#include "faults/watchdog.hpp"

#ifndef EPCOMM_FAULTS_BINARY
#error "EPCOMM_FAULTS_BINARY (the path of the built epcomm-faults) must be defined"
#endif

namespace epcomm::faults {
namespace {

using Clock = std::chrono::steady_clock;

RankRunOptions shell(const std::string& script, std::chrono::milliseconds bound) {
  RankRunOptions o;
  o.command = {"/bin/sh", "-c", script};
  o.parent_environment = {"PATH=/usr/bin:/bin"};
  o.bound = bound;
  o.grace = std::chrono::milliseconds(200);
  return o;
}

TEST(FaultWatchdog, ReportsHowEachRankEnded) {
  const auto endings = run_ranks(shell("exit $((RANK + 3))", std::chrono::seconds(10)));
  ASSERT_EQ(endings.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(endings[r].ended_on_its_own);
    EXPECT_FALSE(endings[r].signaled);
    EXPECT_EQ(endings[r].value, r + 3);
    EXPECT_EQ(endings[r].description, "exited with code " + std::to_string(r + 3));
  }
}

TEST(FaultWatchdog, AKilledPeerDoesNotStopTheSurvivor) {
  // Rank 1 kills itself at once; rank 0 ends on its own a little later.
  const auto endings = run_ranks(
      shell("if [ \"$RANK\" = 1 ]; then kill -9 $$; fi; sleep 0.3; exit 0", std::chrono::seconds(10)));
  EXPECT_TRUE(endings[0].ended_on_its_own);
  EXPECT_EQ(endings[0].value, 0);
  EXPECT_TRUE(endings[1].signaled);
  EXPECT_EQ(endings[1].value, 9);
  EXPECT_NE(endings[1].description.find("killed by signal 9"), std::string::npos);
}

TEST(FaultWatchdog, AHungSurvivorIsStoppedAtItsBound) {
  const auto start = Clock::now();
  const auto endings = run_ranks(shell("exec sleep 30", std::chrono::milliseconds(300)));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);  // a bound on the test's own run, not a measurement
  for (const auto& e : endings) {
    EXPECT_FALSE(e.ended_on_its_own);
    EXPECT_EQ(e.description, "stopped by the watchdog");
  }
}

TEST(FaultWatchdog, AStallingPeerIsStoppedAfterTheSurvivorEnds) {
  const auto endings =
      run_ranks(shell("if [ \"$RANK\" = 1 ]; then exec sleep 30; fi; exit 0", std::chrono::seconds(10)));
  EXPECT_TRUE(endings[0].ended_on_its_own);
  EXPECT_FALSE(endings[1].ended_on_its_own);
  EXPECT_EQ(endings[1].description, "stopped by the watchdog");
}

TEST(FaultWatchdog, RanksGetTheLaunchEnvironmentAndTheirLogs) {
  char tmpl[] = "/tmp/epcomm_faults_logXXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  RankRunOptions o = shell("echo \"$RANK/$WORLD_SIZE $MASTER_ADDR $EXTRA\"", std::chrono::seconds(10));
  o.extra_environment = {"EXTRA=yes"};
  o.log_dir = tmpl;
  run_ranks(o);
  for (int r = 0; r < 2; ++r) {
    std::ifstream in(std::string(tmpl) + "/rank" + std::to_string(r) + ".log");
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, std::to_string(r) + "/2 127.0.0.1 yes");
    std::remove((std::string(tmpl) + "/rank" + std::to_string(r) + ".log").c_str());
  }
  ::rmdir(tmpl);
}

TEST(FaultWatchdog, BadOptionsAreErrors) {
  RankRunOptions o;
  EXPECT_THROW(run_ranks(o), Error);
  o = shell("true", std::chrono::seconds(1));
  o.watched_rank = 2;
  EXPECT_THROW(run_ranks(o), Error);
}

TEST(FaultMemProbe, ReadsStatusLines) {
  const std::string status = "Name:\tx\nVmRSSX:\t1 kB\nVmRSS:\t  123456 kB\nVmHWM:\t 2 kB\n";
  EXPECT_EQ(status_kib(status, "VmRSS"), 123456);
  EXPECT_EQ(status_kib(status, "VmHWM"), 2);
  EXPECT_EQ(status_kib(status, "VmSwap"), -1);
  EXPECT_EQ(status_kib("VmRSS:\tlots\n", "VmRSS"), -1);
}

TEST(FaultMemProbe, SeesThisProcessGrow) {
  const std::int64_t rss = rss_kib();
  EXPECT_GT(rss, 0);
  const int fds = open_fd_count();
  ASSERT_GT(fds, 2);  // stdin, stdout, stderr at least
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_EQ(open_fd_count(), fds + 2);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(open_fd_count(), fds);
  EXPECT_TRUE(grew_within(100, 90, 0));
  EXPECT_TRUE(grew_within(100, 110, 10));
  EXPECT_FALSE(grew_within(100, 111, 10));
}

int run_binary(const std::string& env) {
  const std::string command = "env -i PATH=/usr/bin:/bin CUDA_VISIBLE_DEVICES=-1 " + env + " " +
                              EPCOMM_FAULTS_BINARY + " --out /tmp/epcomm_faults_nogpu > /dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(FaultsBinary, SkipsWithoutAGpuAndFailsWhenOneIsRequired) {
  EXPECT_EQ(run_binary(""), 77);
  EXPECT_EQ(run_binary("EPCOMM_REQUIRE_GPU=1"), 1);
}

}  // namespace
}  // namespace epcomm::faults
