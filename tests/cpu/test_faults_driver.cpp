// The epcomm-faults driver end to end without a GPU: scripted ranks (--rank-command) stand in for
// the rank mode, leaving the files the real ranks leave, so the driver's plumbing is checked: each
// case's fresh processes, the hand-off files, the verdicts, the watchdog's bound on a hung survivor,
// the JSON and the exit code.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#ifndef EPCOMM_FAULTS_BINARY
#error "EPCOMM_FAULTS_BINARY (the path of the built epcomm-faults) must be defined"
#endif

namespace {

// A rank as the real one behaves: rank 1 records its fault time and kills itself; rank 0 records a
// timeout naming rank 1 (and, in a "+mask" case, that it masked the peer and carried on). With
// HANG=1, rank 0 never ends; with HANG=2 neither does rank 1, and each writes its pid. Times from one clock
// (date +%s%N) on both sides.
constexpr const char* kRankScript = R"SH(#!/bin/sh
dir=$4
echo "$* EPCOMM_RANKS_PER_DOMAIN=$EPCOMM_RANKS_PER_DOMAIN" > "$dir/args$RANK"
if [ "$HANG" = 2 ]; then echo $$ > "$dir/pid$RANK"; exec sleep 60; fi
if [ "$RANK" = 1 ]; then date +%s%N > "$dir/fault_ns.txt"; kill -9 $$; fi
[ "$HANG" = 1 ] && exec sleep 60
sleep 0.1
mask=0
case "$2" in *+mask) mask=1 ;; esac
{
  echo recorded=1
  echo got_error=1
  echo category=timeout
  echo "message=rank 0: low-latency dispatch timed out after 100 ms waiting for rank 1 (counter 'rows arrived': expected 1, observed 0)"
  echo "event_ns=$(date +%s%N)"
  echo context_ok=1
  echo peer_masked=$mask
  echo carried_on=$mask
} > "$dir/observed.txt"
)SH";

struct Workdir {
  std::string path, script;
  Workdir() {
    char tmpl[] = "/tmp/epcomm_faults_driverXXXXXX";
    path = ::mkdtemp(tmpl) ? tmpl : "";
    script = path + "/rank.sh";
    std::ofstream(script) << kRankScript;
    ::chmod(script.c_str(), 0755);
  }
  ~Workdir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

int run_driver(const Workdir& w, const std::string& env, const std::string& cases,
               const std::string& more = "") {
  const std::string command = "env " + env + " " EPCOMM_FAULTS_BINARY " --rank-command " + w.script +
                              " --cases " + cases + more +
                              " --timeout-ms 100 --margin-ms 1500 --startup-ms 1500 --out " + w.path +
                              "/out --json " + w.path + "/faults.json > " + w.path + "/driver.log 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(FaultsDriver, ScriptedSurvivorsPassAndSkipsAreCounted) {
  Workdir w;
  ASSERT_FALSE(w.path.empty());
  EXPECT_EQ(run_driver(w, "HANG=0", "ll_dispatch.kill,barrier.mismatch"), 0) << read(w.path + "/driver.log");
  const std::string json = read(w.path + "/faults.json");
  EXPECT_NE(json.find("\"summary\":{\"cases\":6,\"tried\":2,\"survived\":2,\"failed\":0,\"skipped\":4}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"peer_ending\":\"killed by signal 9 (Killed)\""), std::string::npos) << json;
  // Each case ran in its own folder, with its ranks' logs.
  struct stat st {};
  EXPECT_EQ(::stat((w.path + "/out/ll_dispatch.kill+mask/observed.txt").c_str(), &st), 0);
  EXPECT_EQ(::stat((w.path + "/out/ll_dispatch.kill/rank1.log").c_str(), &st), 0);
  EXPECT_NE(read(w.path + "/driver.log").find("ll_dispatch.kill+mask"), std::string::npos);
}

TEST(FaultsDriver, TwoDomainsReachTheRanksAndTheReport) {
  Workdir w;
  ASSERT_FALSE(w.path.empty());
  EXPECT_EQ(run_driver(w, "HANG=0", "ll_dispatch.kill", " --ranks-per-domain 1"), 0) << read(w.path + "/driver.log");
  for (const char* rank : {"0", "1"})
    EXPECT_NE(read(w.path + "/out/ll_dispatch.kill/args" + rank).find("--ranks-per-domain 1 EPCOMM_RANKS_PER_DOMAIN=1"),
              std::string::npos)
        << rank;
  EXPECT_NE(read(w.path + "/faults.json").find("\"ranks_per_domain\":1"), std::string::npos);
  // A run without it is one domain, and says so.
  Workdir one;
  EXPECT_EQ(run_driver(one, "HANG=0", "ll_dispatch.kill"), 0);
  EXPECT_NE(read(one.path + "/faults.json").find("\"ranks_per_domain\":0"), std::string::npos);
  EXPECT_NE(run_driver(one, "HANG=0", "ll_dispatch.kill", " --ranks-per-domain 3"), 0);  // 2 ranks: 0 or 1 (or 2)
}

TEST(FaultsDriver, AHungSurvivorFailsTheCaseAndTheRun) {
  Workdir w;
  ASSERT_FALSE(w.path.empty());
  EXPECT_EQ(run_driver(w, "HANG=1", "barrier.stall"), 1) << read(w.path + "/driver.log");
  const std::string json = read(w.path + "/faults.json");
  EXPECT_NE(json.find("\"survivor_ending\":\"stopped by the watchdog\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"status\":\"fail\""), std::string::npos) << json;
}

// Gone, or a zombie waiting for a parent that is gone too (a container's init may never reap it).
bool process_ended(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string stat = read("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || (close + 2 < stat.size() && stat[close + 2] == 'Z');
}

TEST(FaultsDriver, StoppedFromOutsideItTakesItsRanksAlong) {
  Workdir w;
  ASSERT_FALSE(w.path.empty());
  const std::string command = "exec env HANG=2 " EPCOMM_FAULTS_BINARY " --rank-command " + w.script +
                              " --cases barrier.stall --timeout-ms 100 --startup-ms 60000 --out " + w.path +
                              "/out > /dev/null 2>&1";
  const pid_t driver = ::fork();
  if (driver == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(driver, 0);
  const std::string pid0 = w.path + "/out/barrier.stall/pid0", pid1 = w.path + "/out/barrier.stall/pid1";
  for (int i = 0; i < 1000 && (read(pid0).empty() || read(pid1).empty()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(read(pid0).empty() || read(pid1).empty()) << "the ranks never started";
  ::kill(driver, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(driver, &status, 0), driver);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
  for (const std::string& file : {pid0, pid1}) {
    const pid_t rank = static_cast<pid_t>(std::stol(read(file)));
    // NOTE: 10 s, not 2: under the sanitized CI tier on a loaded machine a killed rank once took
    // longer than 2 s to be seen gone (2026-12-05); a rank the driver failed to kill sleeps 60 s.
    bool ended = false;
    for (int i = 0; i < 1000 && !ended; ++i) {
      ended = process_ended(rank);
      if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(ended) << "rank process " << rank << " outlived the driver; its /proc stat: "
                       << read("/proc/" + std::to_string(rank) + "/stat");
  }
}

}  // namespace
