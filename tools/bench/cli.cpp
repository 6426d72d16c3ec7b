#include "bench/cli.hpp"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "bench/workload.hpp"
#include "core/check.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm::bench {

namespace {

int parse_int(const std::string& flag, const std::string& text, int min_value) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  EPCOMM_CHECK_ARG(!text.empty() && *end == '\0' && errno == 0 && value >= min_value && value <= 1000000000L,
                   flag, ": expected an integer >= ", min_value, ", given '", text, "'");
  return static_cast<int>(value);
}

double parse_double(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  EPCOMM_CHECK_ARG(!text.empty() && *end == '\0' && errno == 0 && value >= 0.0, flag,
                   ": expected a non-negative number, given '", text, "'");
  return value;
}

// A comma-separated list of integers in [1, max_value], e.g. SM counts.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text, const char* what,
                                int max_value = 1000000000) {
  std::vector<int> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    values.push_back(parse_int(flag, item, 1));
    EPCOMM_CHECK_ARG(values.back() <= max_value, flag, ": at most ", max_value, ", given ", values.back());
  }
  EPCOMM_CHECK_ARG(!values.empty(), flag, ": expected a comma-separated list of ", what, ", given '", text,
                   "'");
  return values;
}

std::vector<std::string> resolve_workloads(const std::string& text) {
  if (text == "all") return workload_names();
  std::vector<std::string> names;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    workloads_named(item);  // throws, listing the known names, for an unknown one
    names.push_back(item);
  }
  EPCOMM_CHECK_ARG(!names.empty(), "--workload: expected a workload name, given '", text, "'");
  return names;
}

int env_int(const char* name, int fallback, int min_value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return parse_int(std::string("environment variable ") + name, text, min_value);
}

}  // namespace

std::string usage() {
  return "usage: epcomm-bench [--workload ht-dsv3|ht-skew|ll-dsv3|ll-small|all] [--warmup N] [--iters N]\n"
         "                    [--json PATH] [--csv PATH] [--no-check] [--sms LIST] [--min-efficiency X]\n"
         "                    [--ceiling-mib N]\n"
         "  Started once per GPU by `epcomm-run -n N epcomm-bench ...` (or torchrun); alone, it runs one "
         "rank.\n"
         "  --workload     BENCH.md workload(s), comma-separated, or all (default ht-dsv3)\n"
         "  --warmup/--iters  calls before / inside the timed loop (default 10 / 50, the protocol's "
         "minimum)\n"
         "  --json PATH    BENCH.md result file; '{workload}' in PATH is replaced by the workload name\n"
         "  --csv PATH     every row of every workload as CSV\n"
         "  --no-check     skip the element-wise comparison with the CPU reference\n"
         "  --sms LIST     SM budgets of epcomm's own ops, e.g. 24,48,64\n"
         "  --ce-chunks LIST  chunk counts of the copy-engine dispatch rows, e.g. 2,4,8 (default 4)\n"
         "  --min-efficiency X  exit 4 when an epcomm op's wire efficiency is below X (0..1)\n"
         "  --ceiling-mib N     bytes per peer copy of the NVLink ceiling (default 256)\n"
         "  exit codes: 0 ok (also: no GPU), 1 error, 2 usage, 3 data check failed, 4 below "
         "--min-efficiency\n";
}

Options parse_args(int argc, const char* const* argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      EPCOMM_CHECK_ARG(i + 1 < argc, flag, ": expected a value, given none");
      return argv[++i];
    };
    const auto no_value = [&] {
      EPCOMM_CHECK_ARG(!inline_value, flag, ": takes no value, given '", *inline_value, "'");
    };

    if (flag == "--workload") {
      o.workloads = resolve_workloads(value());
    } else if (flag == "--warmup") {
      o.warmup = parse_int(flag, value(), 0);
    } else if (flag == "--iters") {
      o.iters = parse_int(flag, value(), 1);
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--csv") {
      o.csv_path = value();
    } else if (flag == "--no-check") {
      no_value();
      o.check = false;
    } else if (flag == "--sms") {
      o.sms = parse_int_list(flag, value(), "SM counts");
    } else if (flag == "--ce-chunks") {
      o.ce_chunks = parse_int_list(flag, value(), "chunk counts", kMaxCopyChunks);
    } else if (flag == "--min-efficiency") {
      o.min_efficiency = parse_double(flag, value());
    } else if (flag == "--ceiling-mib") {
      o.ceiling_mib = static_cast<std::size_t>(parse_int(flag, value(), 1));
    } else if (flag == "--help" || flag == "-h") {
      no_value();
      o.help = true;
    } else {
      EPCOMM_CHECK_ARG(false, "unknown argument '", argv[i], "'");
    }
  }
  return o;
}

void disable_nvlink_multicast() {
  // NOTE: hard safety rule of the lent machines; overwrite whatever the caller set.
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
  setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);
}

BenchEnv read_env() {
  BenchEnv env;
  const char* world = std::getenv("WORLD_SIZE");
  env.launched = world != nullptr && *world != '\0';
  if (env.launched) {
    env.world_size = env_int("WORLD_SIZE", 1, 1);
    env.rank = env_int("RANK", 0, 0);
    EPCOMM_CHECK_ARG(env.rank < env.world_size, "environment variable RANK: expected 0..", env.world_size - 1,
                     ", given ", env.rank);
    env.local_rank = env_int("LOCAL_RANK", env.rank, 0);
    env.local_world_size = env_int("LOCAL_WORLD_SIZE", env.world_size, 1);
  }
  if (const char* commit = std::getenv("EPCOMM_COMMIT")) env.commit = commit;
  return env;
}

}  // namespace epcomm::bench
