// Runs the ranks of one fault case as local processes and bounds them: the watched rank (the
// survivor) must end on its own before the deadline, or it is killed and reported as hung; the
// others (a peer that stalls, or that was killed) get a short grace after it, then are killed.
// Unlike epcomm-run, a rank that dies does not stop its siblings: a killed peer is the case itself.
// Host code, CPU-tested with shell commands.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace epcomm::faults {

struct RankEnding {
  bool ended_on_its_own = false;  // exited or died before the watchdog stepped in
  bool signaled = false;          // died by a signal (value = its number); else exited (value = code)
  int value = 0;
  double seconds = -1;      // after the start, when the watchdog learned of the end
  std::string description;  // "exited with code 0", "killed by signal 9 (Killed)", "stopped by the watchdog"
};

struct RankRunOptions {
  std::vector<std::string> command;  // argv; command[0] is a path (not searched in PATH)
  int num_ranks = 2;
  std::vector<std::string> parent_environment;  // each rank gets launcher::child_environment() of it
  std::vector<std::string> extra_environment;   // "NAME=VALUE" set on every rank after that
  int port = 0;                                 // MASTER_PORT; 0: a free port
  int watched_rank = 0;
  std::chrono::milliseconds bound{30000};  // the watched rank's deadline
  std::chrono::milliseconds grace{2000};   // the others' time after the watched rank ended
  std::string log_dir;                     // rank r's stdout and stderr go to log_dir/rank<r>.log
};

// Starts the ranks (each in its own process group), waits as described, and returns every rank's
// ending, [rank]. Throws epcomm::Error (kInvalidArgument for bad options, kInternal when a process
// cannot be started, after killing those started).
std::vector<RankEnding> run_ranks(const RankRunOptions& options);

// Kills the process groups of the ranks run_ranks is running now (none: nothing). Async-signal-safe:
// for a SIGTERM/SIGINT handler of the driver, so a driver stopped from outside leaves no rank behind.
void kill_running_ranks() noexcept;

}  // namespace epcomm::faults
