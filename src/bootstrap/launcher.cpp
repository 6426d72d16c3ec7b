#include "bootstrap/launcher.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/check.hpp"

namespace epcomm::launcher {
namespace {

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
  // Returns the value of option `name` given as "--name=V", "-nV" or "--name V".
  auto value_of = [&](std::string_view arg, std::string_view name, std::string_view inline_value) {
    if (!inline_value.empty()) return std::string(inline_value);
    EPCOMM_CHECK_ARG(i + 1 < args.size(), name, " expects a value (", arg, " was the last argument)");
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
      options.help = true;
    } else if (name == "--nproc" || arg == "-n") {
      options.num_ranks = parse_int_option("-n", value_of(arg, "-n", inline_value), 1, kMaxRanks);
      have_num_ranks = true;
    } else if (arg.starts_with("-n") && !arg.starts_with("--")) {
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
  return env;
}

ChildResult from_wait_status(int rank, int wait_status, bool stopped_by_launcher) {
  ChildResult result;
  result.rank = rank;
  result.signaled = WIFSIGNALED(wait_status);
  result.value = result.signaled ? WTERMSIG(wait_status) : WEXITSTATUS(wait_status);
  result.stopped_by_launcher = stopped_by_launcher;
  return result;
}

int exit_code_of(const ChildResult& result) {
  return result.signaled ? 128 + result.value : result.value;
}

bool is_failure(const ChildResult& result) {
  return result.signaled || (result.value != 0 && result.value != kExitSkipped);
}

std::string describe(const ChildResult& result) {
  std::string text = "rank " + std::to_string(result.rank);
  if (result.signaled) {
    const char* name = strsignal(result.value);
    text += " was killed by signal " + std::to_string(result.value) + " (" + (name ? name : "unknown") + ")";
  } else {
    text += " exited with code " + std::to_string(result.value);
    if (result.value == kExitExecFailed) text += " (command not found or not executable?)";
  }
  return text;
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

}  // namespace epcomm::launcher
