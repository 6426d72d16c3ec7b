// epcomm-run: starts N local processes of a command with torchrun's environment, forwards their
// output line by line with a "[rank K] " prefix, and stops every rank when one fails.
// The testable pieces (arguments, child environment, exit code) live in src/bootstrap/launcher.
//
// Each child runs in its own process group, so stopping a rank also stops what it started (a
// `sh -c` wrapper's children). The launcher waits in one poll() loop on the children's pipes and
// a self-pipe that signal handlers (SIGCHLD, SIGINT, SIGTERM, SIGHUP) write to.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "core/check.hpp"
#include "bootstrap/launcher.hpp"
#include "bootstrap/socket.hpp"

extern char** environ;

namespace {

namespace launcher = epcomm::launcher;
using Clock = std::chrono::steady_clock;

constexpr auto kKillGrace = std::chrono::seconds(5);         // SIGTERM -> SIGKILL
constexpr auto kDrainGrace = std::chrono::seconds(1);        // output still open after all exited
constexpr auto kPollSlice = std::chrono::milliseconds(100);  // bound on one poll() wait
constexpr std::size_t kReadChunk = 64 * 1024;

int g_wake_pipe[2] = {-1, -1};
volatile sig_atomic_t g_interrupt_signal = 0;

void on_signal(int sig) {
  const int saved = errno;
  if (sig != SIGCHLD) g_interrupt_signal = sig;
  const char byte = 0;
  [[maybe_unused]] ssize_t n = ::write(g_wake_pipe[1], &byte, 1);
  errno = saved;
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own output is gone; keep supervising the children
    done += static_cast<std::size_t>(n);
  }
}

void say(const std::string& message) {
  write_all(STDERR_FILENO, "epcomm-run: " + message + "\n");
}

// One child's stdout or stderr: read end of the pipe, bytes of an unfinished line.
struct Stream {
  int fd = -1;
  int out_fd = STDOUT_FILENO;  // where its lines go
  std::string prefix;
  std::string partial;

  void forward(const char* data, std::size_t size) {
    partial.append(data, size);
    std::string lines;
    std::size_t start = 0;
    for (std::size_t nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', start)) {
      lines += prefix;
      lines.append(partial, start, nl + 1 - start);
      start = nl + 1;
    }
    partial.erase(0, start);
    if (!lines.empty()) write_all(out_fd, lines);  // whole lines in one write: no interleaving
  }
  void close_and_flush() {
    if (!partial.empty()) write_all(out_fd, prefix + partial + "\n");
    partial.clear();
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  bool stopped_by_launcher = false;
  Stream out, err;
};

// Starts rank `rank`; the child's stdout/stderr are pipes read by the launcher, stdin is /dev/null.
bool start_child(Child& child, const launcher::Options& options, int port,
                 const std::vector<std::string>& parent) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return false;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return false;
  }
  // Everything the child needs is built before fork(): after it, only exec-safe calls.
  const std::vector<std::string> env =
      launcher::child_environment(parent, child.rank, options.num_ranks, port);
  std::vector<char*> envp, argv;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  for (const std::string& a : options.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string exec_error = "epcomm-run: cannot run '" + options.command[0] + "': ";

  // NOTE: signals stay blocked from before fork() until the child has restored the default
  // handlers; otherwise a SIGTERM sent to a child that has not exec'ed yet would run the
  // launcher's handler in the child and be lost.
  sigset_t all, old_mask;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old_mask);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // exec resets caught signals but keeps ignored ones (the launcher ignores SIGPIPE).
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    ::setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execvpe(argv[0], argv.data(), envp.data());
    const char* reason = std::strerror(errno);
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, exec_error.data(), exec_error.size());
    n = ::write(STDERR_FILENO, reason, std::strlen(reason));
    n = ::write(STDERR_FILENO, "\n", 1);
    ::_exit(launcher::kExitExecFailed);
  }
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return false;
  }
  ::setpgid(pid, pid);  // also here, so the group exists before we might signal it
  child.pid = pid;
  child.running = true;
  const std::string prefix = "[rank " + std::to_string(child.rank) + "] ";
  child.out = Stream{out_pipe[0], STDOUT_FILENO, prefix, {}};
  child.err = Stream{err_pipe[0], STDERR_FILENO, prefix, {}};
  return true;
}

class Supervisor {
 public:
  explicit Supervisor(const launcher::Options& options) : options_(options) {}

  int run() {
    const int port = options_.port ? *options_.port : epcomm::net::pick_free_port();
    std::vector<std::string> parent;
    for (char** e = environ; *e != nullptr; ++e) parent.emplace_back(*e);
    children_.resize(static_cast<std::size_t>(options_.num_ranks));
    for (int r = 0; r < options_.num_ranks; ++r) {
      children_[r].rank = r;
      if (!start_child(children_[r], options_, port, parent)) {
        say("cannot start rank " + std::to_string(r) + ": " + std::strerror(errno));
        stop_all();
        start_failed_ = true;
        break;
      }
    }
    if (options_.timeout_seconds) {
      timeout_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(*options_.timeout_seconds));
    }
    loop();
    if (stopping_) {
      for (const Child& c : children_) {
        if (c.pid > 0) ::kill(-c.pid, SIGKILL);  // leftovers of stopped groups; ESRCH when none
      }
    }
    if (auto s = launcher::failure_summary(results_)) say(*s);
    if (g_interrupt_signal != 0) return 128 + g_interrupt_signal;
    if (timed_out_) return launcher::kExitTimeout;
    if (start_failed_) return 1;
    return launcher::aggregate_exit_code(results_);
  }

 private:
  void loop() {
    std::optional<Clock::time_point> all_exited_at;
    while (true) {
      reap();
      const auto now = Clock::now();
      const bool any_running =
          std::any_of(children_.begin(), children_.end(), [](const Child& c) { return c.running; });
      if (!any_running && !all_exited_at) all_exited_at = now;
      // A grandchild may keep a pipe open after its rank exited: stop waiting for its output.
      if (all_exited_at && now - *all_exited_at > kDrainGrace) close_all_streams();
      std::vector<pollfd> fds{{g_wake_pipe[0], POLLIN, 0}};
      std::vector<Stream*> streams;
      for (Child& c : children_) {
        for (Stream* s : {&c.out, &c.err}) {
          if (s->fd < 0) continue;
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
        }
      }
      if (!any_running && streams.empty()) return;
      if (g_interrupt_signal != 0 && !stopping_) {
        say(std::string("received ") + strsignal(g_interrupt_signal) + "; stopping every rank");
        stop_all();
      }
      if (timeout_at_ && now >= *timeout_at_ && !timed_out_) {
        timed_out_ = true;
        std::ostringstream os;
        os << "timed out after " << *options_.timeout_seconds << " s; stopping " << running_ranks();
        say(os.str());
        stop_all();
      }
      if (kill_at_ && now >= *kill_at_) {
        say("ranks still running " + std::to_string(kKillGrace.count()) +
            " s after SIGTERM; sending SIGKILL");
        signal_running(SIGKILL);
        kill_at_.reset();
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(kPollSlice);
      // Deadlines still ahead shorten the wait; one that already fired (timeout) must not spin.
      for (const auto& at : {timed_out_ ? std::nullopt : timeout_at_, kill_at_}) {
        if (at) wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(*at - now));
      }
      const int rc =
          ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(wait.count(), 0)));
      if (rc < 0 && errno != EINTR) {
        say(std::string("poll failed: ") + std::strerror(errno));
        return;
      }
      if (rc > 0 && (fds[0].revents & POLLIN)) {
        char buf[64];
        while (::read(g_wake_pipe[0], buf, sizeof(buf)) > 0) {
        }
      }
      for (std::size_t i = 1; rc > 0 && i < fds.size(); ++i) {
        if (fds[i].revents != 0) read_stream(*streams[i - 1]);
      }
    }
  }

  static void read_stream(Stream& s) {
    char buf[kReadChunk];
    const ssize_t n = ::read(s.fd, buf, sizeof(buf));
    if (n > 0) {
      s.forward(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      s.close_and_flush();
    }
  }

  void close_all_streams() {
    for (Child& c : children_) {
      c.out.close_and_flush();
      c.err.close_and_flush();
    }
  }

  // Collects ended children in the order the kernel reports them (the first failure decides).
  void reap() {
    while (true) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it =
          std::find_if(children_.begin(), children_.end(), [&](const Child& c) { return c.pid == pid; });
      if (it == children_.end() || !it->running) continue;
      Child& c = *it;
      c.running = false;
      const launcher::ChildResult result = launcher::from_wait_status(c.rank, status, c.stopped_by_launcher);
      results_.push_back(result);
      if (launcher::is_failure(result) && !stopping_) {
        say(launcher::describe(result) + "; stopping the other ranks");
        stop_all();
      } else if (launcher::is_failure(result) && !c.stopped_by_launcher) {
        say(launcher::describe(result));
      }
    }
  }

  void stop_all() {
    stopping_ = true;
    signal_running(SIGTERM);
    if (!kill_at_) kill_at_ = Clock::now() + kKillGrace;
  }

  void signal_running(int sig) {
    for (Child& c : children_) {
      if (!c.running) continue;
      c.stopped_by_launcher = true;
      ::kill(-c.pid, sig);
    }
  }

  std::string running_ranks() const {
    std::string text;
    for (const Child& c : children_) {
      if (c.running) text += (text.empty() ? "rank " : ", ") + std::to_string(c.rank);
    }
    return text.empty() ? std::string("nothing") : text;
  }

  const launcher::Options& options_;
  std::vector<Child> children_;
  std::vector<launcher::ChildResult> results_;  // in the order the children ended
  std::optional<Clock::time_point> timeout_at_;
  std::optional<Clock::time_point> kill_at_;
  bool stopping_ = false;
  bool timed_out_ = false;
  bool start_failed_ = false;
};

bool install_signal_handlers() {
  if (::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill the supervisor of running ranks
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  launcher::Options options;
  try {
    options = launcher::parse_args(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const epcomm::Error& e) {
    std::cerr << "epcomm-run: " << e.message() << "\n\n" << launcher::usage();
    return launcher::kExitUsage;
  }
  if (options.help) {
    std::cout << launcher::usage();
    return 0;
  }
  if (!install_signal_handlers()) {
    say(std::string("cannot create the wake-up pipe: ") + std::strerror(errno));
    return 1;
  }
  try {
    return Supervisor(options).run();
  } catch (const std::exception& e) {
    say(e.what());
    return 1;
  }
}
