#include "faults/watchdog.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "bootstrap/launcher.hpp"
#include "bootstrap/socket.hpp"
#include "core/check.hpp"

namespace epcomm::faults {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollSlice = std::chrono::milliseconds(5);

// SIGTERM, SIGINT and SIGHUP (the driver's stop signals, which kill the tracked ranks) held pending
// for this object's life; delivered when it ends.
class StopSignalsHeld {
 public:
  StopSignalsHeld() {
    sigset_t stop;
    sigemptyset(&stop);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop, sig);
    ::pthread_sigmask(SIG_BLOCK, &stop, &previous_);
  }
  ~StopSignalsHeld() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  StopSignalsHeld(const StopSignalsHeld&) = delete;
  StopSignalsHeld& operator=(const StopSignalsHeld&) = delete;
  // In a forked child, before exec: the default actions (not the driver's handlers, which would
  // stop the other ranks), then the mask it had before.
  void restore_in_child() const noexcept {
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }

 private:
  sigset_t previous_{};
};
constexpr int kMaxTracked = 64;  // ranks kill_running_ranks can reach (a fault case runs 2)

// The process groups of the ranks now running, for kill_running_ranks (0: free slot).
volatile sig_atomic_t g_running[kMaxTracked] = {};

void track(pid_t pid, bool running) {
  for (auto& slot : g_running) {
    if (running ? slot == 0 : slot == pid) {
      slot = running ? pid : 0;
      return;
    }
  }
}

struct Child {
  pid_t pid = -1;
  bool reaped = false;
  RankEnding ending;
};

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child after fork: own process group, output to the log, exec. Never returns.
[[noreturn]] void exec_child(std::vector<std::string> argv, std::vector<std::string> env,
                             const std::string& log) {
  ::setpgid(0, 0);
  const int in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) ::dup2(in, STDIN_FILENO);
  const int out = log.empty() ? -1 : ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out >= 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
  }
  std::vector<char*> args = c_strings(argv), envp = c_strings(env);
  ::execve(args[0], args.data(), envp.data());
  const std::string text = "exec " + argv[0] + " failed: " + std::strerror(errno) + "\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
  ::_exit(launcher::kExitExecFailed);
}

void reap_if_ended(Child& c, Clock::time_point start, bool block) {
  if (c.reaped) return;
  int status = 0;
  const pid_t r = ::waitpid(c.pid, &status, block ? 0 : WNOHANG);
  if (r != c.pid) return;
  c.reaped = true;
  track(c.pid, false);
  c.ending.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  c.ending.signaled = WIFSIGNALED(status);
  c.ending.value = c.ending.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
  if (c.ending.description.empty()) {  // not stopped by the watchdog
    c.ending.ended_on_its_own = true;
    c.ending.description = c.ending.signaled ? "killed by signal " + std::to_string(c.ending.value) + " (" +
                                                   strsignal(c.ending.value) + ")"
                                             : "exited with code " + std::to_string(c.ending.value);
  }
}

void stop(Child& c, Clock::time_point start) {
  if (c.reaped) return;
  c.ending.description = "stopped by the watchdog";
  ::kill(-c.pid, SIGKILL);
  reap_if_ended(c, start, /*block=*/true);
}

// Polls until `done` says so or `deadline` passes.
template <typename Done>
void wait_until(std::vector<Child>& children, Clock::time_point start, Clock::time_point deadline,
                Done done) {
  while (!done() && Clock::now() < deadline) {
    for (Child& c : children) reap_if_ended(c, start, false);
    if (!done()) std::this_thread::sleep_for(kPollSlice);
  }
}

}  // namespace

std::vector<RankEnding> run_ranks(const RankRunOptions& o) {
  EPCOMM_REQUIRE(!o.command.empty(), ErrorCategory::kInvalidArgument, "run_ranks: command is empty");
  EPCOMM_REQUIRE(o.num_ranks >= 1 && o.num_ranks <= launcher::kMaxRanks, ErrorCategory::kInvalidArgument,
                 "run_ranks: num_ranks ", o.num_ranks, " outside [1, ", launcher::kMaxRanks, "]");
  EPCOMM_REQUIRE(o.watched_rank >= 0 && o.watched_rank < o.num_ranks, ErrorCategory::kInvalidArgument,
                 "run_ranks: watched_rank ", o.watched_rank, " outside [0, ", o.num_ranks, ")");
  const int port = o.port > 0 ? o.port : net::pick_free_port();
  std::vector<Child> children(static_cast<std::size_t>(o.num_ranks));
  const Clock::time_point start = Clock::now();
  for (int r = 0; r < o.num_ranks; ++r) {
    std::vector<std::string> env = launcher::child_environment(o.parent_environment, r, o.num_ranks, port);
    env.insert(env.end(), o.extra_environment.begin(), o.extra_environment.end());
    const std::string log = o.log_dir.empty() ? "" : o.log_dir + "/rank" + std::to_string(r) + ".log";
    // NOTE: the stop signals wait while a rank is forked and tracked: a child can start, run and
    // be seen running before fork() returns here, and a stop in that window killed every rank but
    // the one not yet tracked (seen on a loaded CI machine, 2026-12-05). The child restores the mask
    // before it execs (exec keeps it).
    const StopSignalsHeld held;
    const pid_t pid = ::fork();
    if (pid == 0) {
      held.restore_in_child();
      exec_child(o.command, std::move(env), log);
    }
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      for (Child& c : children)
        if (c.pid > 0) stop(c, start);
      EPCOMM_THROW(ErrorCategory::kInternal, "run_ranks: fork failed: ", why);
    }
    ::setpgid(pid, pid);  // also in the child: whichever runs first
    children[static_cast<std::size_t>(r)].pid = pid;
    track(pid, true);
  }
  Child& watched = children[static_cast<std::size_t>(o.watched_rank)];
  wait_until(children, start, start + o.bound, [&] { return watched.reaped; });
  stop(watched, start);
  const auto all_reaped = [&] {
    for (const Child& c : children)
      if (!c.reaped) return false;
    return true;
  };
  wait_until(children, start, Clock::now() + o.grace, all_reaped);
  std::vector<RankEnding> endings;
  for (Child& c : children) {
    stop(c, start);
    endings.push_back(c.ending);
  }
  return endings;
}

void kill_running_ranks() noexcept {
  for (auto& slot : g_running)
    if (slot != 0) ::kill(-static_cast<pid_t>(slot), SIGKILL);
}

}  // namespace epcomm::faults
