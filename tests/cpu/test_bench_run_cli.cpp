// epcomm-run refuses an option given twice (tools/epcomm_run.cpp), end to end through the built
// binary: before, `epcomm-run -n 2 -n 3 CMD` silently started 3 ranks.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#ifndef EPCOMM_RUN_BINARY
#error "EPCOMM_RUN_BINARY (the path of the built epcomm-run) must be defined"
#endif

namespace {

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Result run(const std::string& arguments) {
  const std::string command = std::string(EPCOMM_RUN_BINARY) + " " + arguments + " 2>&1";
  Result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) result.output.append(buf, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

constexpr int kExitUsage = 2;

TEST(BenchRunCli, RepeatedOptionIsRefused) {
  for (const char* args : {"-n 2 -n 3 true", "-n2 --nproc 3 true", "--nproc=2 -n3 true"}) {
    const Result r = run(args);
    EXPECT_EQ(r.exit_code, kExitUsage) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("-n given more than once"), std::string::npos) << args << "\n" << r.output;
  }
  const Result port = run("-n 1 --port 29500 --port=29501 true");
  EXPECT_EQ(port.exit_code, kExitUsage) << port.output;
  EXPECT_NE(port.output.find("--port given more than once (again as '--port=29501')"), std::string::npos)
      << port.output;
  const Result timeout = run("-n 1 --timeout 5 --timeout 6 true");
  EXPECT_EQ(timeout.exit_code, kExitUsage) << timeout.output;
  EXPECT_NE(timeout.output.find("--timeout given more than once (again as '--timeout 6')"), std::string::npos)
      << timeout.output;
}

TEST(BenchRunCli, OptionsOfTheCommandAreItsOwn) {
  // After CMD starts, a repeated flag belongs to CMD: `sh -c 'exit 0' -n -n` passes them to sh.
  const Result r = run("-n 1 -- sh -c 'exit 0' -n -n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const Result once = run("-n 1 true");
  EXPECT_EQ(once.exit_code, 0) << once.output;
}

}  // namespace
