// The testable logic of epcomm-run (tools/epcomm_run.cpp): argument parsing, the environment of
// each child, and how the children's endings make the launcher's exit code. Host code only.
//
//   epcomm-run -n N [--timeout SECONDS] [--port P] CMD [ARGS...]
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace epcomm::launcher {

constexpr int kExitUsage = 2;         // bad command line
constexpr int kExitSkipped = 77;      // a test that cannot run here (ctest SKIP_RETURN_CODE)
constexpr int kExitTimeout = 124;     // --timeout expired (the coreutils `timeout` convention)
constexpr int kExitExecFailed = 127;  // a child could not start CMD (the shell convention)
constexpr int kMaxRanks = 4096;

struct Options {
  int num_ranks = 0;                      // -n
  std::optional<double> timeout_seconds;  // --timeout; none: wait forever
  std::optional<int> port;                // --port; none: a free port picked by binding port 0
  std::vector<std::string> command;       // CMD ARGS...
  bool help = false;                      // -h / --help: print usage(), run nothing
};

// Parses the arguments after argv[0]. Options end at the first non-option or at "--". Throws
// epcomm::Error(kInvalidArgument) naming the bad option or value.
Options parse_args(const std::vector<std::string>& args);
std::string usage();

// Variables every child gets whatever the parent's environment says. NOTE: the NVLS / multicast
// switches are a safety rule of our GPU machines; never drop them.
std::span<const std::pair<std::string_view, std::string_view>> forced_variables() noexcept;
// The environment ("NAME=VALUE" strings) of rank `rank`: the parent's, minus any variable set
// here, plus the torchrun rendezvous variables (MASTER_ADDR=127.0.0.1, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and forced_variables().
std::vector<std::string> child_environment(const std::vector<std::string>& parent, int rank, int num_ranks,
                                           int port);

// How one child ended.
struct ChildResult {
  int rank = 0;
  bool signaled = false;             // killed by a signal; else it exited
  int value = 0;                     // the exit code, or the signal number
  bool stopped_by_launcher = false;  // the launcher signalled it (a sibling failed, timeout)
};
ChildResult from_wait_status(int rank, int wait_status, bool stopped_by_launcher);
// The code a shell would report: the exit code, or 128 + signal.
int exit_code_of(const ChildResult& result);
// A failure stops the siblings: a signal, or an exit code other than 0 and kExitSkipped (a
// skipped rank lets the others finish; they usually skip too).
bool is_failure(const ChildResult& result);
// "rank 2 exited with code 3", "rank 1 was killed by signal 9 (Killed)".
std::string describe(const ChildResult& result);
// The launcher's exit code from the children's endings in the order they were reaped: 0 when all
// exited 0; kExitSkipped only when every child exited kExitSkipped; otherwise the first code that
// is neither 0 nor kExitSkipped (children that ended on their own before those the launcher
// stopped), or 1 for a mix of passes and skips.
int aggregate_exit_code(const std::vector<ChildResult>& in_reap_order);

}  // namespace epcomm::launcher
