// epcomm-run: argument parsing, the children's environment, exit-code aggregation, and the built
// binary end to end (EPCOMM_RUN_BINARY is its path, set by tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "bootstrap/launcher.hpp"

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

ChildResult exited(int rank, int code, bool stopped = false) {
  return {rank, false, code, stopped};
}
ChildResult killed(int rank, int sig, bool stopped = false) {
  return {rank, true, sig, stopped};
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

}  // namespace
}  // namespace epcomm::launcher
