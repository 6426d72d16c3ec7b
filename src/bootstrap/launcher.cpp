#include "bootstrap/launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "bootstrap/socket.hpp"
#include "core/check.hpp"

namespace epcomm::launcher {
namespace {

using Clock = std::chrono::steady_clock;

// The clock of seconds_since_start(): set when this object's static data is initialised, before main().
const Clock::time_point g_process_start = Clock::now();

constexpr std::array<std::pair<std::string_view, std::string_view>, 3> kForced = {{
    {"NCCL_NVLS_ENABLE", "0"},
    {"NVSHMEM_DISABLE_NVLS", "1"},
    {"TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"},
}};

constexpr std::array<std::string_view, 6> kRendezvous = {"MASTER_ADDR", "MASTER_PORT", "RANK",
                                                         "WORLD_SIZE",  "LOCAL_RANK",  "LOCAL_WORLD_SIZE"};

int parse_int_option(std::string_view option, std::string_view text, int min_value, int max_value) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  EPCOMM_CHECK_ARG(!text.empty() && ec == std::errc() && end == text.data() + text.size() &&
                       value >= min_value && value <= max_value,
                   option, " expects an integer in [", min_value, ", ", max_value, "], got '", text, "'");
  return value;
}

double parse_seconds(std::string_view option, std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  EPCOMM_CHECK_ARG(!text.empty() && ec == std::errc() && end == text.data() + text.size() &&
                       std::isfinite(value) && value > 0,
                   option, " expects a positive number of seconds, got '", text, "'");
  return value;
}

std::string_view variable_name(std::string_view assignment) {
  return assignment.substr(0, assignment.find('='));
}

}  // namespace

std::string usage() {
  return "usage: epcomm-run -n N [--timeout SECONDS] [--port P] CMD [ARGS...]\n"
         "\n"
         "Starts N local processes of CMD with torchrun's environment (MASTER_ADDR=127.0.0.1,\n"
         "MASTER_PORT, RANK, WORLD_SIZE=N, LOCAL_RANK, LOCAL_WORLD_SIZE=N) and NVLS/multicast\n"
         "disabled (NCCL_NVLS_ENABLE=0, NVSHMEM_DISABLE_NVLS=1, TORCH_SYMM_MEM_DISABLE_MULTICAST=1).\n"
         "Each line of output is prefixed with \"[rank K] \". When a rank fails, the others are\n"
         "stopped (SIGTERM, then SIGKILL after 5 s).\n"
         "\n"
         "  -n, --nproc N        number of processes (1 to 4096)\n"
         "  --timeout SECONDS    stop everything after this long and exit 124\n"
         "  --port P             MASTER_PORT (default: a free port)\n"
         "  -h, --help           this text\n"
         "\n"
         "Exit code: 0 when every rank exits 0; 77 when every rank exits 77 (skipped); otherwise\n"
         "the code of the first rank that failed (128 + signal for a signal).\n";
}

Options parse_args(const std::vector<std::string>& args) {
  Options options;
  bool have_num_ranks = false;
  std::size_t i = 0;
  // An option given twice is refused (`-n 2 -n 3` would otherwise run 3 ranks without a word),
  // named with the spelling it came in again as.
  std::set<std::string> seen;
  auto once = [&](std::string_view option, std::string_view given) {
    EPCOMM_CHECK_ARG(seen.insert(std::string(option)).second, option, " given more than once (again as '",
                     given, "'); give each option once");
  };
  // Returns the value of option `name` given as "--name=V", "-nV" or "--name V".
  // Also refuses a second use of the option (`once`).
  auto value_of = [&](std::string_view arg, std::string_view name, std::string_view inline_value) {
    if (!inline_value.empty()) {
      once(name, arg);
      return std::string(inline_value);
    }
    EPCOMM_CHECK_ARG(i + 1 < args.size(), name, " expects a value (", arg, " was the last argument)");
    once(name, std::string(arg) + " " + args[i + 1]);
    return args[++i];
  };
  for (; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.empty() || arg[0] != '-') break;  // CMD starts here
    const std::size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const std::string_view inline_value =
        eq == std::string_view::npos ? std::string_view() : arg.substr(eq + 1);
    if (arg == "-h" || arg == "--help") {
      once("--help", arg);
      options.help = true;
    } else if (name == "--nproc" || arg == "-n") {
      options.num_ranks = parse_int_option("-n", value_of(arg, "-n", inline_value), 1, kMaxRanks);
      have_num_ranks = true;
    } else if (arg.starts_with("-n") && !arg.starts_with("--")) {
      once("-n", arg);
      options.num_ranks = parse_int_option("-n", arg.substr(2), 1, kMaxRanks);
      have_num_ranks = true;
    } else if (name == "--timeout") {
      options.timeout_seconds = parse_seconds("--timeout", value_of(arg, "--timeout", inline_value));
    } else if (name == "--port") {
      options.port = parse_int_option("--port", value_of(arg, "--port", inline_value), 1, 65535);
    } else {
      EPCOMM_THROW(ErrorCategory::kInvalidArgument, "unknown option '", arg, "'");
    }
  }
  options.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  if (options.help) return options;
  EPCOMM_CHECK_ARG(have_num_ranks, "-n N (the number of processes) is required");
  EPCOMM_CHECK_ARG(!options.command.empty(), "no command given (expected CMD [ARGS...] after the options)");
  return options;
}

std::span<const std::pair<std::string_view, std::string_view>> forced_variables() noexcept {
  return kForced;
}

const std::string& launch_job_token() {
  static const std::string token =
      "epcomm-run:" + std::to_string(::getpid()) + ":" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  return token;
}

std::vector<std::string> child_environment(const std::vector<std::string>& parent, int rank, int num_ranks,
                                           int port) {
  auto is_ours = [](std::string_view assignment) {
    const std::string_view name = variable_name(assignment);
    return std::find(kRendezvous.begin(), kRendezvous.end(), name) != kRendezvous.end() ||
           std::any_of(kForced.begin(), kForced.end(), [&](const auto& f) { return f.first == name; });
  };
  std::vector<std::string> env;
  env.reserve(parent.size() + kRendezvous.size() + kForced.size());
  for (const std::string& assignment : parent) {
    if (!is_ours(assignment)) env.push_back(assignment);
  }
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  env.push_back("RANK=" + std::to_string(rank));
  env.push_back("WORLD_SIZE=" + std::to_string(num_ranks));
  env.push_back("LOCAL_RANK=" + std::to_string(rank));
  env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(num_ranks));
  for (const auto& [name, value] : kForced) env.push_back(std::string(name) + "=" + std::string(value));
  const bool has_token = std::any_of(parent.begin(), parent.end(), [](const std::string& a) {
    return variable_name(a) == "EPCOMM_JOB_TOKEN" && a.size() > std::string_view("EPCOMM_JOB_TOKEN=").size();
  });
  if (!has_token) env.push_back("EPCOMM_JOB_TOKEN=" + launch_job_token());
  return env;
}

double seconds_since_start() noexcept {
  return std::chrono::duration<double>(Clock::now() - g_process_start).count();
}

ChildResult from_wait_status(int rank, int wait_status, bool stopped_by_launcher, double seconds) {
  ChildResult result;
  result.rank = rank;
  result.signaled = WIFSIGNALED(wait_status);
  result.value = result.signaled ? WTERMSIG(wait_status) : WEXITSTATUS(wait_status);
  result.stopped_by_launcher = stopped_by_launcher;
  result.seconds = seconds;
  return result;
}

int exit_code_of(const ChildResult& result) {
  return result.signaled ? 128 + result.value : result.value;
}

bool is_failure(const ChildResult& result) {
  return result.signaled || (result.value != 0 && result.value != kExitSkipped);
}

namespace {

// "exited with code 3", "was killed by signal 9 (Killed)".
std::string ending_of(const ChildResult& result) {
  if (result.signaled) {
    const char* name = strsignal(result.value);
    return "was killed by signal " + std::to_string(result.value) + " (" + (name ? name : "unknown") + ")";
  }
  std::string text = "exited with code " + std::to_string(result.value);
  if (result.value == kExitExecFailed) text += " (command not found or not executable?)";
  return text;
}

// " after 0.21 s", or nothing when the time is unknown.
std::string time_of(const ChildResult& result) {
  if (result.seconds < 0) return {};
  char text[48];
  std::snprintf(text, sizeof(text), " after %.2f s", result.seconds);
  return text;
}

}  // namespace

std::string describe(const ChildResult& result) {
  return "rank " + std::to_string(result.rank) + " " + ending_of(result);
}

// NOTE: kExitSkipped only when every rank skipped: a skip beside a pass or a failure ({0, 77},
// {77, 1}) is a failure, or a run that did not run everywhere would read as "skipped".
int aggregate_exit_code(const std::vector<ChildResult>& in_reap_order) {
  auto exited_with = [](int code) {
    return [code](const ChildResult& r) { return !r.signaled && r.value == code; };
  };
  if (std::all_of(in_reap_order.begin(), in_reap_order.end(), exited_with(0))) return 0;
  if (std::all_of(in_reap_order.begin(), in_reap_order.end(), exited_with(kExitSkipped))) return kExitSkipped;
  const auto failed = [](const ChildResult& r) {
    return exit_code_of(r) != 0 && exit_code_of(r) != kExitSkipped;
  };
  for (const ChildResult& r : in_reap_order) {
    if (!r.stopped_by_launcher && failed(r)) return exit_code_of(r);
  }
  // Only children the launcher stopped failed (the caller reports its own reason first).
  for (const ChildResult& r : in_reap_order) {
    if (failed(r)) return exit_code_of(r);
  }
  return 1;  // passes and skips mixed
}

std::string format_ranks(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
    if (j > i) {
      text += '-';
      text += std::to_string(ranks[j]);
    }
    i = j + 1;
  }
  return text;
}

std::optional<std::string> failure_summary(const std::vector<ChildResult>& in_reap_order) {
  constexpr std::size_t kMaxListed = 8;  // further failures of their own are counted, not listed
  const auto exited_with = [](int code) {
    return [code](const ChildResult& r) { return !r.signaled && r.value == code; };
  };
  const auto& all = in_reap_order;
  if (all.empty() || std::all_of(all.begin(), all.end(), exited_with(0)) ||
      std::all_of(all.begin(), all.end(), exited_with(kExitSkipped))) {
    return std::nullopt;
  }
  std::vector<const ChildResult*> own;  // failed on their own, in reap order
  std::vector<int> stopped, skipped, passed;
  for (const ChildResult& r : all) {
    if (r.stopped_by_launcher) {
      stopped.push_back(r.rank);
    } else if (is_failure(r)) {
      own.push_back(&r);
    } else {
      (r.value == 0 ? passed : skipped).push_back(r.rank);
    }
  }
  std::string text;
  if (!own.empty()) {
    text = "rank " + std::to_string(own[0]->rank) + " failed first: " + ending_of(*own[0]) + time_of(*own[0]);
  } else if (!stopped.empty()) {
    text = "no rank failed on its own";
  } else {  // passes and skips only
    return format_ranks(skipped) + " skipped (exit " + std::to_string(kExitSkipped) + ") while " +
           format_ranks(passed) + " exited 0: a partial skip is a failure";
  }
  for (std::size_t i = 1; i < own.size() && i <= kMaxListed; ++i) {
    text += (i == 1 ? "; then on their own: " : ", ") + describe(*own[i]) + time_of(*own[i]);
  }
  if (own.size() > kMaxListed + 1) text += " and " + std::to_string(own.size() - kMaxListed - 1) + " more";
  if (!stopped.empty()) text += "; stopped by the launcher: " + format_ranks(stopped);
  return text;
}

// ---- run_local ----------------------------------------------------------------------------------

namespace {

// Code given to a rank whose end was collected by someone else (waitpid said ECHILD: the caller
// reaps children with waitpid(-1)); its real ending is unknown, so it counts as a failure.
constexpr int kExitUnknown = 255;
constexpr auto kReapInterval = std::chrono::milliseconds(5);  // bound on noticing a rank's end

// One rank of run_local: its process (group) and the memory file holding its output.
struct LocalChild {
  LocalChild() = default;
  LocalChild(const LocalChild&) = delete;
  LocalChild& operator=(const LocalChild&) = delete;
  ~LocalChild() {
    if (output_fd >= 0) ::close(output_fd);
  }
  int rank = 0;
  pid_t pid = -1;
  int output_fd = -1;
  bool running = false;
  bool stopped = false;  // signalled by run_local
};

std::string read_from_start(int fd) {
  std::string text;
  if (::lseek(fd, 0, SEEK_SET) < 0) return text;
  char buf[16384];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

// Forks and execs `command` for child.rank with `env`; false (errno set) when fork fails.
bool start_local(LocalChild& child, const std::vector<std::string>& command,
                 const std::vector<std::string>& env) {
  // Everything the child needs is built before fork(): after it, only exec-safe calls.
  std::vector<char*> argv, envp;
  for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string exec_error = "epcomm launcher: cannot run '" + command[0] + "': ";
  // NOTE: signals stay blocked from before fork() until the child has restored the default
  // handlers, so a SIGTERM sent before exec never runs a handler of the caller's in the child.
  sigset_t all, old_mask;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old_mask);
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(child.output_fd, STDOUT_FILENO);
    ::dup2(child.output_fd, STDERR_FILENO);
    ::execvpe(argv[0], argv.data(), envp.data());
    const char* reason = std::strerror(errno);
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, exec_error.data(), exec_error.size());
    n = ::write(STDERR_FILENO, reason, std::strlen(reason));
    n = ::write(STDERR_FILENO, "\n", 1);
    ::_exit(kExitExecFailed);
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (pid < 0) {
    errno = fork_errno;
    return false;
  }
  ::setpgid(pid, pid);  // also here, so the group exists before it may be signalled
  child.pid = pid;
  child.running = true;
  return true;
}

void signal_running(std::vector<LocalChild>& children, int sig) {
  for (LocalChild& c : children) {
    if (!c.running || c.pid <= 0) continue;
    c.stopped = true;
    ::kill(-c.pid, sig);
  }
}

}  // namespace

LocalRun run_local(const LocalRunOptions& options) {
  EPCOMM_CHECK_ARG(!options.command.empty(), "run_local: no command given");
  EPCOMM_CHECK_ARG(options.num_ranks >= 1 && options.num_ranks <= kMaxRanks,
                   "run_local: num_ranks expects [1, ", kMaxRanks, "], got ", options.num_ranks);
  EPCOMM_CHECK_ARG(options.timeout.count() > 0 && options.kill_grace.count() >= 0,
                   "run_local: expects a positive timeout and a non-negative kill_grace, got ",
                   options.timeout.count(), " ms and ", options.kill_grace.count(), " ms");
  const int port = options.port > 0 ? options.port : net::pick_free_port();
  const auto start = Clock::now();
  std::vector<LocalChild> children(static_cast<std::size_t>(options.num_ranks));
  for (int r = 0; r < options.num_ranks; ++r) {
    LocalChild& c = children[static_cast<std::size_t>(r)];
    c.rank = r;
    c.output_fd = ::memfd_create("epcomm-rank-output", MFD_CLOEXEC);
    const bool started = c.output_fd >= 0 && start_local(c, options.command,
                                                         child_environment(options.parent_environment, r,
                                                                           options.num_ranks, port));
    if (!started) {
      const std::string reason = std::strerror(errno);
      signal_running(children, SIGKILL);
      for (LocalChild& s : children) {
        if (s.running) ::waitpid(s.pid, nullptr, 0);
      }
      EPCOMM_THROW(ErrorCategory::kInternal, "run_local: cannot start rank ", r, ": ", reason);
    }
  }

  LocalRun run;
  bool stopping = false;
  Clock::time_point kill_at = Clock::time_point::max();  // when SIGKILL follows SIGTERM
  const auto stop_all = [&] {
    if (!stopping) kill_at = Clock::now() + options.kill_grace;
    stopping = true;
    signal_running(children, SIGTERM);
  };
  while (std::any_of(children.begin(), children.end(), [](const LocalChild& c) { return c.running; })) {
    for (LocalChild& c : children) {
      if (!c.running) continue;
      int status = 0;
      const pid_t got = ::waitpid(c.pid, &status, WNOHANG);
      if (got == 0 || (got < 0 && errno == EINTR)) continue;
      if (got < 0) status = kExitUnknown << 8;  // ECHILD: reaped elsewhere (a W_EXITCODE)
      c.running = false;
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      run.in_reap_order.push_back(from_wait_status(c.rank, status, c.stopped, seconds));
      if (is_failure(run.in_reap_order.back()) && !stopping) stop_all();
    }
    const auto now = Clock::now();
    if (!run.timed_out && now - start >= options.timeout) {
      run.timed_out = true;
      stop_all();
    }
    if (now >= kill_at) {
      signal_running(children, SIGKILL);
      kill_at = Clock::time_point::max();
    }
    std::this_thread::sleep_for(kReapInterval);
  }
  if (stopping) {
    for (const LocalChild& c : children) {
      if (c.pid > 0) ::kill(-c.pid, SIGKILL);  // leftovers of stopped groups; ESRCH when none
    }
  }
  run.output.reserve(children.size());
  for (const LocalChild& c : children) run.output.push_back(read_from_start(c.output_fd));
  run.exit_code = run.timed_out ? kExitTimeout : aggregate_exit_code(run.in_reap_order);
  return run;
}

}  // namespace epcomm::launcher
