// The testable logic of epcomm-run (tools/epcomm_run.cpp): argument parsing, the environment of
// each child, how the children's endings make the launcher's exit code and its one-line summary,
// and run_local(), a plain supervisor of N local ranks for programs that start ranks themselves
// (epcomm-doctor). Host code only.
//
//   epcomm-run -n N [--timeout SECONDS] [--port P] CMD [ARGS...]
#pragma once

#include <chrono>
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
// This launch's job identity: the same for every child of one launcher process, different across
// launches (the launcher's pid and start time).
const std::string& launch_job_token();
// The environment ("NAME=VALUE" strings) of rank `rank`: the parent's, minus any variable set
// here, plus the torchrun rendezvous variables (MASTER_ADDR=127.0.0.1, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and forced_variables(); and, unless the parent sets
// one, EPCOMM_JOB_TOKEN=launch_job_token(), so the rendezvous refuses any process of another job.
std::vector<std::string> child_environment(const std::vector<std::string>& parent, int rank, int num_ranks,
                                           int port);

// How one child ended.
struct ChildResult {
  int rank = 0;
  bool signaled = false;             // killed by a signal; else it exited
  int value = 0;                     // the exit code, or the signal number
  bool stopped_by_launcher = false;  // the launcher signalled it (a sibling failed, timeout)
  double seconds = -1;  // when the launcher learned of its end, seconds after the start; < 0: unknown
};
// Seconds since this process started (since the launcher code was loaded): the default clock of
// from_wait_status, close to "since the ranks were started" for a launcher that starts them first.
double seconds_since_start() noexcept;
ChildResult from_wait_status(int rank, int wait_status, bool stopped_by_launcher,
                             double seconds = seconds_since_start());
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

// One line saying who failed, for a run that did not pass: none when every child exited 0 or every
// child exited kExitSkipped (or none was reaped). The first child in reap order that failed on its
// own (not stopped by the launcher) is named with its ending and time, then any others that failed
// on their own, then the ranks the launcher stopped afterwards, e.g.
//   "rank 1 failed first: exited with code 5 after 0.21 s; stopped by the launcher: ranks 0, 2-3"
// When only stopped ranks failed (a timeout, an interrupt): "no rank failed on its own; ...".
// A mix of passes and skips says which ranks skipped. Rank lists are compressed into ranges.
std::optional<std::string> failure_summary(const std::vector<ChildResult>& in_reap_order);
// "rank 3", "ranks 0-2, 5" (ascending; ranges of consecutive ranks).
std::string format_ranks(std::vector<int> ranks);

// ---- run_local: N local ranks of a command, their output kept --------------------------------

struct LocalRunOptions {
  std::vector<std::string> command;             // CMD ARGS... (searched in PATH like execvp)
  int num_ranks = 1;                            // 1 to kMaxRanks
  std::vector<std::string> parent_environment;  // "NAME=VALUE"; each rank gets child_environment() of it
  int port = 0;                                 // MASTER_PORT; 0: a free port
  std::chrono::milliseconds timeout{60000};     // then every rank still running is stopped
  std::chrono::milliseconds kill_grace{5000};   // SIGTERM -> SIGKILL
};

struct LocalRun {
  std::vector<ChildResult> in_reap_order;  // seconds: since run_local started the first rank
  std::vector<std::string> output;         // [rank]: its stdout and stderr, interleaved as written
  bool timed_out = false;                  // options.timeout expired and ranks were stopped
  int exit_code = 0;                       // aggregate_exit_code, or kExitTimeout when timed out
};

// Starts options.num_ranks processes of options.command as epcomm-run does (each in its own process
// group, stdin /dev/null, torchrun's environment) and waits for them; when one fails (is_failure),
// or the timeout expires, the others get SIGTERM, then SIGKILL after kill_grace. Their output goes
// to memory files read back at the end, so it suits programs that print little. Installs no signal
// handler and waits only for its own children. Throws epcomm::Error (kInvalidArgument for bad
// options, kInternal when a process or memory file cannot be made, after stopping the ranks started).
LocalRun run_local(const LocalRunOptions& options);

}  // namespace epcomm::launcher
