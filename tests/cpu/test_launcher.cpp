// epcomm-run: argument parsing, the children's environment, exit-code aggregation, the failure
// summary, run_local with real child processes, and the built binary end to end
// (EPCOMM_RUN_BINARY is its path, set by tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bootstrap/launcher.hpp"
#include "epcomm/error.hpp"

#ifndef EPCOMM_RUN_BINARY
#error "EPCOMM_RUN_BINARY (the path of the built epcomm-run) must be defined"
#endif

namespace epcomm::launcher {
namespace {

using Args = std::vector<std::string>;

void expect_parse_error(const Args& args, const std::string& needle) {
  try {
    parse_args(args);
    ADD_FAILURE() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
  }
}

TEST(LauncherArgs, Accepted) {
  Options o = parse_args({"-n", "4", "./prog", "--flag", "-n", "9"});
  EXPECT_EQ(o.num_ranks, 4);
  EXPECT_EQ(o.command, (Args{"./prog", "--flag", "-n", "9"}));  // options end at CMD
  EXPECT_FALSE(o.timeout_seconds);
  EXPECT_FALSE(o.port);

  o = parse_args({"-n2", "--timeout", "1.5", "--port=12345", "prog"});
  EXPECT_EQ(o.num_ranks, 2);
  EXPECT_EQ(o.timeout_seconds, 1.5);
  EXPECT_EQ(o.port, 12345);

  o = parse_args({"--nproc=3", "--timeout=600", "--", "-weird-name"});
  EXPECT_EQ(o.num_ranks, 3);
  EXPECT_EQ(o.timeout_seconds, 600.0);
  EXPECT_EQ(o.command, (Args{"-weird-name"}));

  EXPECT_TRUE(parse_args({"--help"}).help);
  EXPECT_NE(usage().find("epcomm-run -n N"), std::string::npos);
}

TEST(LauncherArgs, Rejected) {
  expect_parse_error({}, "-n N");
  expect_parse_error({"prog"}, "-n N");
  expect_parse_error({"-n", "2"}, "no command");
  expect_parse_error({"-n"}, "expects a value");
  expect_parse_error({"-n", "0", "prog"}, "'0'");
  expect_parse_error({"-n", "abc", "prog"}, "'abc'");
  expect_parse_error({"-n", "2", "--timeout", "-1", "prog"}, "'-1'");
  expect_parse_error({"-n", "2", "--timeout", "soon", "prog"}, "'soon'");
  expect_parse_error({"-n", "2", "--port", "70000", "prog"}, "'70000'");
  expect_parse_error({"-n", "2", "--bogus", "prog"}, "'--bogus'");
}

// Every child of one launch presents the same job token (the rendezvous admits only it); a token
// the parent set is kept. Catches children of one launch refused by their own rank 0.
TEST(LauncherEnv, OneJobTokenPerLaunchUnlessTheParentSetsOne) {
  const Args parent = {"PATH=/bin"};
  const Args a = child_environment(parent, 0, 2, 29555);
  const Args b = child_environment(parent, 1, 2, 29555);
  const std::string token = "EPCOMM_JOB_TOKEN=" + launch_job_token();
  EXPECT_EQ(std::count(a.begin(), a.end(), token), 1);
  EXPECT_EQ(std::count(b.begin(), b.end(), token), 1);
  EXPECT_NE(launch_job_token().find("epcomm-run:"), std::string::npos);
  const Args own = child_environment({"EPCOMM_JOB_TOKEN=mine"}, 0, 2, 29555);
  EXPECT_EQ(std::count(own.begin(), own.end(), std::string("EPCOMM_JOB_TOKEN=mine")), 1);
  EXPECT_EQ(std::count_if(own.begin(), own.end(),
                          [](const std::string& e) { return e.rfind("EPCOMM_JOB_TOKEN=", 0) == 0; }),
            1);
}

TEST(LauncherEnv, SetsRendezvousAndForcesSafetyVariables) {
  const Args parent = {"PATH=/bin", "NCCL_NVLS_ENABLE=1", "RANK=9", "NVSHMEM_DISABLE_NVLS=0", "HOME=/root"};
  const Args env = child_environment(parent, 2, 4, 29555);
  auto count = [&](const std::string& prefix) {
    return std::count_if(env.begin(), env.end(),
                         [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  };
  auto has = [&](const std::string& assignment) {
    return std::find(env.begin(), env.end(), assignment) != env.end();
  };
  for (const char* name :
       {"MASTER_ADDR=", "MASTER_PORT=", "RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
        "NCCL_NVLS_ENABLE=", "NVSHMEM_DISABLE_NVLS=", "TORCH_SYMM_MEM_DISABLE_MULTICAST="}) {
    EXPECT_EQ(count(name), 1) << name;
  }
  EXPECT_TRUE(has("MASTER_ADDR=127.0.0.1"));
  EXPECT_TRUE(has("MASTER_PORT=29555"));
  EXPECT_TRUE(has("RANK=2"));
  EXPECT_TRUE(has("WORLD_SIZE=4"));
  EXPECT_TRUE(has("LOCAL_RANK=2"));
  EXPECT_TRUE(has("LOCAL_WORLD_SIZE=4"));
  EXPECT_TRUE(has("NCCL_NVLS_ENABLE=0"));
  EXPECT_TRUE(has("NVSHMEM_DISABLE_NVLS=1"));
  EXPECT_TRUE(has("TORCH_SYMM_MEM_DISABLE_MULTICAST=1"));
  EXPECT_TRUE(has("PATH=/bin"));
  EXPECT_TRUE(has("HOME=/root"));
}

ChildResult exited(int rank, int code, bool stopped = false, double seconds = -1) {
  return {rank, false, code, stopped, seconds};
}
ChildResult killed(int rank, int sig, bool stopped = false, double seconds = -1) {
  return {rank, true, sig, stopped, seconds};
}

TEST(LauncherExitCode, Aggregation) {
  EXPECT_EQ(aggregate_exit_code({exited(0, 0), exited(1, 0), exited(2, 0)}), 0);
  EXPECT_EQ(aggregate_exit_code({exited(1, 77), exited(0, 77)}), 77);
  // Catches (issue 18, item 15): mixes of a skip with anything else read as "skipped" (the first
  // non-zero code); 77 now only when every rank skipped, any other mix fails.
  EXPECT_EQ(aggregate_exit_code({exited(0, 0), exited(1, 77)}), 1);  // partly skipped: a failure
  EXPECT_EQ(aggregate_exit_code({exited(1, 77), exited(0, 0), exited(2, 77)}), 1);
  // The first rank that failed on its own decides, not the siblings the launcher stopped.
  EXPECT_EQ(aggregate_exit_code({exited(2, 3), killed(0, 15, true), killed(1, 15, true)}), 3);
  EXPECT_EQ(aggregate_exit_code({killed(0, 15, true), exited(2, 3)}), 3);
  EXPECT_EQ(aggregate_exit_code({exited(0, 0), killed(1, 11), exited(2, 4)}), 139);
  EXPECT_EQ(aggregate_exit_code({exited(1, 77), exited(0, 1)}), 1);  // the first non-77 non-zero code
  EXPECT_EQ(aggregate_exit_code({exited(1, 77), exited(0, 5), exited(2, 3)}), 5);
  EXPECT_EQ(aggregate_exit_code({exited(0, 77), killed(1, 15, true)}), 143);
}

TEST(LauncherExitCode, ChildResults) {
  const ChildResult a = from_wait_status(2, W_EXITCODE(3, 0), false);
  EXPECT_FALSE(a.signaled);
  EXPECT_EQ(a.value, 3);
  EXPECT_EQ(exit_code_of(a), 3);
  EXPECT_TRUE(is_failure(a));
  EXPECT_EQ(describe(a), "rank 2 exited with code 3");
  const ChildResult b = from_wait_status(1, W_EXITCODE(0, 9), true);
  EXPECT_TRUE(b.signaled);
  EXPECT_TRUE(b.stopped_by_launcher);
  EXPECT_EQ(exit_code_of(b), 137);
  EXPECT_EQ(describe(b).rfind("rank 1 was killed by signal 9", 0), 0u);
  EXPECT_FALSE(is_failure(exited(0, 0)));
  EXPECT_FALSE(is_failure(exited(0, kExitSkipped)));
}

TEST(LauncherSummary, FormatRanks) {
  EXPECT_EQ(format_ranks({3}), "rank 3");
  EXPECT_EQ(format_ranks({5, 0, 1, 2}), "ranks 0-2, 5");
  EXPECT_EQ(format_ranks({7, 1, 3, 4, 4}), "ranks 1, 3-4, 7");
  EXPECT_EQ(format_ranks({}), "ranks ");
}

TEST(LauncherSummary, NamesTheFirstRankThatFailedOnItsOwn) {
  EXPECT_FALSE(failure_summary({}));
  EXPECT_FALSE(failure_summary({exited(0, 0), exited(1, 0)}));
  EXPECT_FALSE(failure_summary({exited(1, 77), exited(0, 77)}));
  // Reaped first is rank 0, but the launcher stopped it: rank 2 failed first.
  EXPECT_EQ(failure_summary({killed(0, 15, true, 0.5), exited(2, 3, false, 0.25), killed(1, 15, true, 0.5),
                             killed(3, 9, true, 5.5)}),
            "rank 2 failed first: exited with code 3 after 0.25 s; stopped by the launcher: ranks 0-1, 3");
  const std::optional<std::string> signalled = failure_summary({exited(0, 0), killed(1, 11, false, 1.0)});
  ASSERT_TRUE(signalled);
  EXPECT_EQ(signalled->rfind("rank 1 failed first: was killed by signal 11 (", 0), 0u) << *signalled;
  EXPECT_EQ(signalled->find("stopped"), std::string::npos) << *signalled;
  // Others that failed on their own before the launcher reached them are listed after the first.
  EXPECT_EQ(
      failure_summary({exited(4, 1, false, 2.0), exited(2, 1, false, 2.01), exited(3, 127), exited(0, 0),
                       killed(1, 15, true, 2.02)}),
      "rank 4 failed first: exited with code 1 after 2.00 s; then on their own: rank 2 exited with code "
      "1 after 2.01 s, rank 3 exited with code 127 (command not found or not executable?); stopped by "
      "the launcher: rank 1");
  // A long list is cut.
  std::vector<ChildResult> many;
  for (int r = 0; r < 20; ++r) many.push_back(exited(r, 1));
  const std::string cut = failure_summary(many).value();
  EXPECT_NE(cut.find("rank 8 exited with code 1 and 11 more"), std::string::npos) << cut;
  EXPECT_EQ(cut.find("rank 9 "), std::string::npos) << cut;
}

TEST(LauncherSummary, StoppedOnlyAndPartialSkips) {
  // A timeout or an interrupt: the launcher stopped everyone (its own reason is printed apart).
  EXPECT_EQ(failure_summary({killed(1, 15, true), killed(0, 15, true), exited(2, 0, true)}),
            "no rank failed on its own; stopped by the launcher: ranks 0-2");
  EXPECT_EQ(failure_summary({exited(0, 0), exited(1, 77), exited(2, 0), exited(3, 77)}),
            "ranks 1, 3 skipped (exit 77) while ranks 0, 2 exited 0: a partial skip is a failure");
}

TEST(LauncherSummary, WaitStatusKeepsTheTime) {
  EXPECT_EQ(from_wait_status(1, W_EXITCODE(2, 0), false, 1.5).seconds, 1.5);
  const double now = seconds_since_start();
  EXPECT_GT(now, 0.0);
  EXPECT_GE(from_wait_status(1, W_EXITCODE(2, 0), false).seconds, now);  // the default clock
}

// ---- run_local: real child processes ----------------------------------------------------------

LocalRun run_sh(const std::string& script, int num_ranks, std::chrono::milliseconds timeout,
                std::chrono::milliseconds kill_grace = std::chrono::milliseconds(2000)) {
  LocalRunOptions o;
  o.command = {"sh", "-c", script};
  o.num_ranks = num_ranks;
  o.parent_environment = {"PATH=/usr/bin:/bin", "NCCL_NVLS_ENABLE=1"};
  o.timeout = timeout;
  o.kill_grace = kill_grace;
  return run_local(o);
}

TEST(LauncherRunLocal, KeepsEachRanksOutputAndEnvironment) {
  const LocalRun r = run_sh("echo $RANK/$WORLD_SIZE/$LOCAL_RANK $NCCL_NVLS_ENABLE; echo err$RANK >&2", 3,
                            std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  ASSERT_EQ(r.output.size(), 3u);
  for (int rank = 0; rank < 3; ++rank) {
    const std::string want =
        std::to_string(rank) + "/3/" + std::to_string(rank) + " 0\nerr" + std::to_string(rank) + "\n";
    EXPECT_EQ(r.output[static_cast<std::size_t>(rank)], want);
  }
  EXPECT_EQ(r.in_reap_order.size(), 3u);
  EXPECT_FALSE(failure_summary(r.in_reap_order));
}

TEST(LauncherRunLocal, FirstFailureStopsTheOthersAndIsNamed) {
  const auto start = std::chrono::steady_clock::now();
  const LocalRun r =
      run_sh("if [ $RANK = 2 ]; then sleep 0.3; exit 5; fi; exec sleep 30", 4, std::chrono::seconds(20));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 4.0);
  EXPECT_EQ(r.exit_code, 5);
  ASSERT_EQ(r.in_reap_order.size(), 4u);
  const ChildResult& first = r.in_reap_order.front();
  EXPECT_EQ(first.rank, 2);
  EXPECT_FALSE(first.stopped_by_launcher);
  EXPECT_GE(first.seconds, 0.3);
  EXPECT_LT(first.seconds, 3.0);
  for (std::size_t i = 1; i < r.in_reap_order.size(); ++i) {
    EXPECT_TRUE(r.in_reap_order[i].stopped_by_launcher);
    EXPECT_TRUE(r.in_reap_order[i].signaled);
    EXPECT_EQ(r.in_reap_order[i].value, 15);
  }
  const std::string summary = failure_summary(r.in_reap_order).value();
  EXPECT_EQ(summary.rfind("rank 2 failed first: exited with code 5 after 0.", 0), 0u) << summary;
  EXPECT_NE(summary.find("; stopped by the launcher: ranks 0-1, 3"), std::string::npos) << summary;
}

TEST(LauncherRunLocal, SignalTimeoutAndKillGrace) {
  const LocalRun killed_run =
      run_sh("if [ $RANK = 0 ]; then kill -9 $$; fi; exec sleep 30", 2, std::chrono::seconds(20));
  EXPECT_EQ(killed_run.exit_code, 128 + 9);
  EXPECT_EQ(failure_summary(killed_run.in_reap_order)
                .value()
                .rfind("rank 0 failed first: was killed by signal 9", 0),
            0u);

  // Ranks that ignore SIGTERM get SIGKILL after the grace; a timeout reads kExitTimeout.
  const auto start = std::chrono::steady_clock::now();
  const LocalRun stuck =
      run_sh("trap '' TERM; sleep 30", 2, std::chrono::milliseconds(300), std::chrono::milliseconds(300));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(stuck.timed_out);
  EXPECT_EQ(stuck.exit_code, kExitTimeout);
  EXPECT_GE(seconds, 0.6);
  EXPECT_LT(seconds, 4.0);
  EXPECT_EQ(failure_summary(stuck.in_reap_order),
            "no rank failed on its own; stopped by the launcher: ranks 0-1");
  for (const ChildResult& c : stuck.in_reap_order) EXPECT_EQ(exit_code_of(c), 128 + 9);
}

TEST(LauncherRunLocal, MissingCommandAndBadOptions) {
  LocalRunOptions o;
  o.command = {"/nonexistent/epcomm-test-program"};
  o.num_ranks = 2;
  const LocalRun r = run_local(o);
  EXPECT_EQ(r.exit_code, kExitExecFailed);
  // The rank that failed first said why (the other may be stopped before it could).
  ASSERT_FALSE(r.in_reap_order.empty());
  const std::string& said = r.output[static_cast<std::size_t>(r.in_reap_order[0].rank)];
  EXPECT_NE(said.find("cannot run '/nonexistent/epcomm-test-program'"), std::string::npos) << said;
  o.num_ranks = 0;
  EXPECT_THROW(run_local(o), Error);
  o.num_ranks = 1;
  o.command.clear();
  EXPECT_THROW(run_local(o), Error);
}

// ---- the built binary -----------------------------------------------------------------------

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  double seconds = 0;
};

RunResult run(const std::string& arguments) {
  const auto start = std::chrono::steady_clock::now();
  const std::string command = std::string(EPCOMM_RUN_BINARY) + " " + arguments + " 2>&1";
  RunResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) result.output.append(buf, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST(LauncherBinary, SetsEnvironmentAndPrefixesOutput) {
  ::setenv("NCCL_NVLS_ENABLE", "1", 1);  // the launcher must override it
  const RunResult r =
      run("-n 3 --port 23456 sh -c 'echo $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE "
          "$MASTER_ADDR $MASTER_PORT $NCCL_NVLS_ENABLE $NVSHMEM_DISABLE_NVLS "
          "$TORCH_SYMM_MEM_DISABLE_MULTICAST'");
  ::unsetenv("NCCL_NVLS_ENABLE");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sorted_lines(r.output), (std::vector<std::string>{"[rank 0] 0 3 0 3 127.0.0.1 23456 0 1 1",
                                                              "[rank 1] 1 3 1 3 127.0.0.1 23456 0 1 1",
                                                              "[rank 2] 2 3 2 3 127.0.0.1 23456 0 1 1"}));
}

TEST(LauncherBinary, PicksAPortAndForwardsStderrAndPartialLines) {
  const RunResult r = run("-n 2 sh -c 'echo port=$MASTER_PORT; echo oops >&2; printf tail'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto lines = sorted_lines(r.output);
  ASSERT_EQ(lines.size(), 6u) << r.output;
  EXPECT_EQ(lines[0], "[rank 0] oops");
  EXPECT_EQ(lines[1].rfind("[rank 0] port=", 0), 0u);
  EXPECT_GT(std::atoi(lines[1].c_str() + 14), 0);
  EXPECT_EQ(lines[1].substr(9), lines[4].substr(9));  // one MASTER_PORT for all ranks
  EXPECT_EQ(lines[2], "[rank 0] tail");
  EXPECT_EQ(lines[5], "[rank 1] tail");
}

TEST(LauncherBinary, FailingRankStopsASleepingSibling) {
  const RunResult r = run("-n 2 sh -c 'if [ $RANK = 1 ]; then exit 5; fi; sleep 30'");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_LT(r.seconds, 4.0);
  EXPECT_NE(r.output.find("rank 1 exited with code 5"), std::string::npos) << r.output;
}

// Needs the one-line change in tools/epcomm_run.cpp (Supervisor::run, before its returns:
// `if (auto s = launcher::failure_summary(results_)) say(*s);`); enable it with that change.
TEST(LauncherBinary, SummaryNamesTheFirstFailedRank) {
  const RunResult r = run("-n 3 sh -c 'if [ $RANK = 1 ]; then sleep 0.2; exit 5; fi; sleep 30'");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("epcomm-run: rank 1 failed first: exited with code 5 after 0."), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("; stopped by the launcher: ranks 0, 2"), std::string::npos) << r.output;
  const RunResult timed_out = run("-n 2 --timeout 0.3 sleep 30");
  EXPECT_NE(
      timed_out.output.find("epcomm-run: no rank failed on its own; stopped by the launcher: ranks 0-1"),
      std::string::npos)
      << timed_out.output;
  EXPECT_EQ(run("-n 2 true").output, "");  // nothing on success
}

TEST(LauncherBinary, SignalledRank) {
  const RunResult r = run("-n 2 sh -c 'if [ $RANK = 0 ]; then kill -9 $$; fi; sleep 30'");
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;
  EXPECT_LT(r.seconds, 4.0);
  EXPECT_NE(r.output.find("rank 0 was killed by signal 9"), std::string::npos) << r.output;
}

TEST(LauncherBinary, TimeoutExits124) {
  const RunResult r = run("-n 2 --timeout 0.5 sleep 30");
  EXPECT_EQ(r.exit_code, kExitTimeout) << r.output;
  EXPECT_LT(r.seconds, 4.0);
  EXPECT_NE(r.output.find("timed out after 0.5 s"), std::string::npos) << r.output;
}

TEST(LauncherBinary, AllSkippedExits77) {
  EXPECT_EQ(run("-n 3 sh -c 'exit 77'").exit_code, kExitSkipped);
  EXPECT_EQ(run("-n 2 sh -c 'exit 0'").exit_code, 0);
  // One rank skipped, the other passed: not a skip (issue 18, item 15).
  EXPECT_EQ(run("-n 2 sh -c 'if [ $RANK = 1 ]; then exit 77; fi'").exit_code, 1);
}

TEST(LauncherBinary, UsageErrorsAndMissingCommand) {
  const RunResult usage_error = run("-n 0 true");
  EXPECT_EQ(usage_error.exit_code, kExitUsage);
  EXPECT_NE(usage_error.output.find("usage: epcomm-run"), std::string::npos);
  const RunResult missing = run("-n 1 /nonexistent/epcomm-test-program");
  EXPECT_EQ(missing.exit_code, kExitExecFailed) << missing.output;
  EXPECT_NE(missing.output.find("[rank 0] epcomm-run: cannot run '/nonexistent/epcomm-test-program'"),
            std::string::npos)
      << missing.output;
}

// An option given twice is refused by parse_args, named with its second spelling (`-n 2 -n 3` would
// otherwise run 3 ranks without a word); options after CMD belong to CMD.
TEST(LauncherBinary, RepeatedOptionIsRefused) {
  for (const char* args : {"-n 2 -n 3 true", "-n2 --nproc 3 true", "--nproc=2 -n3 true"}) {
    const RunResult r = run(args);
    EXPECT_EQ(r.exit_code, kExitUsage) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("-n given more than once"), std::string::npos) << args << "\n" << r.output;
  }
  const RunResult port = run("-n 1 --port 29500 --port=29501 true");
  EXPECT_EQ(port.exit_code, kExitUsage) << port.output;
  EXPECT_NE(port.output.find("--port given more than once (again as '--port=29501')"), std::string::npos)
      << port.output;
  const RunResult timeout = run("-n 1 --timeout 5 --timeout 6 true");
  EXPECT_EQ(timeout.exit_code, kExitUsage) << timeout.output;
  EXPECT_NE(timeout.output.find("--timeout given more than once (again as '--timeout 6')"), std::string::npos)
      << timeout.output;
}

TEST(LauncherBinary, OptionsOfTheCommandAreItsOwn) {
  // After CMD starts, a repeated flag belongs to CMD: `sh -c 'exit 0' -n -n` passes them to sh.
  const RunResult r = run("-n 1 -- sh -c 'exit 0' -n -n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const RunResult once = run("-n 1 true");
  EXPECT_EQ(once.exit_code, 0) << once.output;
}

}  // namespace
}  // namespace epcomm::launcher
