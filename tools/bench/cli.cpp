#include "bench/cli.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "bench/report.hpp"
#include "bench/require.hpp"
#include "epcomm/ht_options.hpp"
#include "epcomm/low_latency.hpp"

namespace epcomm::bench {

namespace {

constexpr long kMaxInt = 1000000000L;  // any other integer flag

int parse_int(const std::string& flag, const std::string& text, long min_value, long max_value = kMaxInt) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  BENCH_CHECK_ARG(!text.empty() && *end == '\0' && errno == 0 && value >= min_value && value <= max_value,
                  flag, ": expected an integer in ", min_value, "..", max_value, ", given '", text, "'");
  return static_cast<int>(value);
}

// A number in (0, 1].
double parse_fraction(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  BENCH_CHECK_ARG(!text.empty() && *end == '\0' && errno == 0 && value > 0.0 && value <= 1.0, flag,
                  ": expected a number in (0, 1], given '", text, "'");
  return value;
}

// A positive number up to `max_value`.
double parse_positive(const std::string& flag, const std::string& text, double max_value) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  BENCH_CHECK_ARG(!text.empty() && *end == '\0' && errno == 0 && value > 0.0 && value <= max_value, flag,
                  ": expected a number in (0, ", max_value, "], given '", text, "'");
  return value;
}

// A comma-separated list of integers in [1, max_value], e.g. SM counts.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text, const char* what,
                                int max_value = kMaxInt) {
  std::vector<int> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) values.push_back(parse_int(flag, item, 1, max_value));
  BENCH_CHECK_ARG(!values.empty(), flag, ": expected a comma-separated list of ", what, ", given '", text,
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
  BENCH_CHECK_ARG(!names.empty(), "--workload: expected a workload name, given '", text, "'");
  return names;
}

// Refuses an output path whose folder does not exist (found now, not after a GPU run).
void require_folder(const char* flag, const std::string& path) {
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::error_code ec;
  BENCH_CHECK_ARG(folder.empty() || std::filesystem::is_directory(folder, ec), flag, ": the folder '",
                  folder.string(), "' of '", path, "' does not exist; create it first");
}

// The custom shape flags seen so far; all four sizes are needed when any custom flag is given.
struct CustomFlags {
  std::optional<int> tokens, hidden, topk, experts;
  Routing routing = Routing::kRandom;
  Mode mode = Mode::kHighThroughput;
  bool any = false;

  Workload resolve() const {
    std::string missing;
    for (const auto& [flag, value] : {std::pair{"--tokens", tokens}, std::pair{"--hidden", hidden},
                                      std::pair{"--topk", topk}, std::pair{"--experts", experts}})
      if (!value) missing += std::string(missing.empty() ? "" : ", ") + flag;
    BENCH_CHECK_ARG(missing.empty(),
                    "a custom workload needs --tokens, --hidden, --topk and --experts; missing: ", missing);
    return make_custom_workload({.num_tokens = *tokens,
                                 .hidden = *hidden,
                                 .num_topk = *topk,
                                 .num_experts = *experts,
                                 .routing = routing,
                                 .mode = mode});
  }
};

bool parse_bool_env(const char* name, bool fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  std::string v(text);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  BENCH_CHECK_ARG(false, "environment variable ", name,
                  ": expected 1|0, true|false, yes|no or on|off, given '", text, "'");
  return fallback;
}

int env_int(const char* name, int fallback, int min_value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return parse_int(std::string("environment variable ") + name, text, min_value);
}

}  // namespace

std::vector<std::string> run_names(const Options& options) {
  std::vector<std::string> names = options.workloads;
  if (options.custom) names.push_back(options.custom->name);
  return names;
}

std::string usage() {
  std::ostringstream os;
  os << "usage: epcomm-bench [--workload NAMES|all]\n";
  os << "         [--tokens N --hidden H --topk K --experts E [--routing uniform|skew] [--mode ht|ll]]\n";
  os << "         [--warmup N] [--iters N] [--json PATH] [--csv PATH] [--no-check] [--sms LIST]\n";
  os << "         [--ce-chunks LIST] [--min-efficiency X] [--ceiling-mib N] [--shared-gpu-timing]\n";
  os << "         [--split-layout]\n";
  os << "         [--telemetry]\n";
  os << "         [--ranks-per-domain G] [--nic-gbps X] [--preamble-hold-us N]\n";
  os << "         [-h|--help]\n";
  os << "  Started once per GPU by `epcomm-run -n N epcomm-bench ...` (or torchrun); alone, one rank.\n";
  os << "  Workloads and the result format: docs/benchmark.md. Each flag may be given once.\n";
  os << "  --workload NAMES   ht-dsv3, ht-skew, ll-dsv3, ll-small (comma-separated) or all; default\n";
  os << "                     ht-dsv3, or none when a custom shape is given\n";
  os << "  --tokens N         custom shape: tokens per rank (ht: 1.." << kMaxCustomTokens << ", ll: 1.."
     << kLlMaxTokensPerRank << ")\n";
  os << "  --hidden H         custom shape: channels, a multiple of 128 (ht: up to " << kMaxCustomHidden
     << ", ll: up to " << kLlMaxHidden << ")\n";
  os << "  --topk K           custom shape: experts per token, 1..experts (ll: at most " << kLlMaxTopk
     << ")\n";
  os << "  --experts E        custom shape: experts, 1.." << kMaxCustomExperts
     << ", divisible by the number of ranks\n";
  os << "  --routing R        custom shape: uniform (random top-k, the default) or skew (as ht-skew)\n";
  os << "  --mode M           custom shape: ht (high-throughput, the default) or ll (low-latency)\n";
  os << "  --warmup N         untimed calls first, 0.." << kMaxWarmup
     << " (default 10, the protocol's minimum)\n";
  os << "  --iters N          timed calls, 1.." << kMaxIters << " (default 50, the protocol's minimum)\n";
  os << "  --json PATH        the result file ('{workload}' in PATH becomes the workload's name); its\n";
  os << "                     folder must exist\n";
  os << "  --csv PATH         every row of every workload as CSV; its folder must exist\n";
  os << "  --no-check         skip the checked call and its comparison with the CPU reference\n";
  os << "  --sms LIST         SM budgets of epcomm's own ops (default 24,48,64)\n";
  os << "  --ce-chunks LIST   chunk counts of the copy-engine dispatch rows, each 1.." << kMaxCopyChunks
     << " (default 4)\n";
  os << "  --min-efficiency X exit 4 when an epcomm op's wire efficiency is below X, in (0, 1]\n";
  os << "  --ceiling-mib N    MiB per peer copy of the NVLink ceiling, 1.." << kMaxCeilingMib
     << " (default 256)\n";
  os << "  --shared-gpu-timing with fewer GPUs than ranks, run rank r on GPU r mod count and time it;\n";
  os << "                     every row says its timing is of ranks sharing a GPU, not NVLink timing\n";
  os << "                     (without it such a run is skipped, or refused when ranks see one GPU)\n";
  os << "  --telemetry        make epcomm's Buffers with per-peer telemetry on; after each row's timed\n";
  os << "                     calls print (and put in the JSON) the bytes to and from each peer, the time\n";
  os << "                     waited on it per operation, and the peer the others waited on longest\n";
  os << "  --ranks-per-domain G  run the high-throughput workloads on a multi-domain Buffer of G ranks\n";
  os << "                     per NVLink domain, 1.." << kMaxRanksPerDomain
     << ", dividing the ranks (EPCOMM_RANKS_PER_DOMAIN too);\n";
  os << "                     rows add the bytes through the NIC and over NVLink; ranks sharing a GPU\n";
  os << "                     are checked, not timed, unless --shared-gpu-timing\n";
  os << "  --nic-gbps X       NIC rate per GPU of the multi-domain floors, GB/s (default " << kDefaultNicGbps
     << ")\n";
  os << "  --preamble-hold-us N  before each call of the preamble pass, hold the stream N us on the\n";
  os << "                     device so its events time the kernels, not the host's launches, 0.."
     << kMaxPreambleHoldUs << " (default " << kDefaultPreambleHoldUs << "; 0: no hold)\n";
  os << "  --split-layout     a whole high-throughput dispatch calls get_dispatch_layout, then dispatch\n";
  os << "                     with its tensors (default: dispatch given topk_idx alone, one launch for\n";
  os << "                     layout and notify)\n";
  os << "  environment: EPCOMM_REQUIRE_GPU=1 makes a run without a GPU fail instead of skipping\n";
  os << "  exit codes: 0 ok (also: skipped, no GPU), 1 error, 2 usage, 3 data check failed,\n";
  os << "              4 below --min-efficiency\n";
  return os.str();
}

Options parse_args(int argc, const char* const* argv) {
  Options o;
  CustomFlags custom;
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == "-h") flag = "--help";
    BENCH_CHECK_ARG(seen.insert(flag).second, flag, ": given more than once; give each flag once");
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      BENCH_CHECK_ARG(i + 1 < argc, flag, ": expected a value, given none");
      return argv[++i];
    };
    const auto no_value = [&] {
      BENCH_CHECK_ARG(!inline_value, flag, ": takes no value, given '", *inline_value, "'");
    };
    const auto custom_int = [&](std::optional<int>& field) {
      field = parse_int(flag, value(), 1);
      custom.any = true;
    };

    if (flag == "--workload") {
      o.workloads = resolve_workloads(value());
    } else if (flag == "--tokens") {
      custom_int(custom.tokens);
    } else if (flag == "--hidden") {
      custom_int(custom.hidden);
    } else if (flag == "--topk") {
      custom_int(custom.topk);
    } else if (flag == "--experts") {
      custom_int(custom.experts);
    } else if (flag == "--routing") {
      const std::string v = value();
      BENCH_CHECK_ARG(v == "uniform" || v == "skew", flag, ": expected uniform or skew, given '", v, "'");
      custom.routing = v == "skew" ? Routing::kSkewed : Routing::kRandom;
      custom.any = true;
    } else if (flag == "--mode") {
      const std::string v = value();
      BENCH_CHECK_ARG(v == "ht" || v == "ll", flag, ": expected ht or ll, given '", v, "'");
      custom.mode = v == "ll" ? Mode::kLowLatency : Mode::kHighThroughput;
      custom.any = true;
    } else if (flag == "--warmup") {
      o.warmup = parse_int(flag, value(), 0, kMaxWarmup);
    } else if (flag == "--iters") {
      o.iters = parse_int(flag, value(), 1, kMaxIters);
    } else if (flag == "--json") {
      o.json_path = value();
    } else if (flag == "--csv") {
      o.csv_path = value();
    } else if (flag == "--no-check") {
      no_value();
      o.check = false;
    } else if (flag == "--ranks-per-domain") {
      o.ranks_per_domain = parse_int(flag, value(), 1, kMaxRanksPerDomain);
    } else if (flag == "--preamble-hold-us") {
      o.preamble_hold_us = parse_int(flag, value(), 0, kMaxPreambleHoldUs);
    } else if (flag == "--nic-gbps") {
      o.nic_gbps = parse_positive(flag, value(), kMaxNicGbps);
    } else if (flag == "--sms") {
      o.sms = parse_int_list(flag, value(), "SM counts");
    } else if (flag == "--ce-chunks") {
      o.ce_chunks = parse_int_list(flag, value(), "chunk counts", kMaxCopyChunks);
    } else if (flag == "--min-efficiency") {
      o.min_efficiency = parse_fraction(flag, value());
    } else if (flag == "--ceiling-mib") {
      o.ceiling_mib = static_cast<std::size_t>(parse_int(flag, value(), 1, kMaxCeilingMib));
    } else if (flag == "--split-layout") {
      no_value();
      o.split_layout = true;
    } else if (flag == "--shared-gpu-timing") {
      no_value();
      o.shared_gpu_timing = true;
    } else if (flag == "--telemetry") {
      no_value();
      o.telemetry = true;
    } else if (flag == "--help") {
      no_value();
      o.help = true;
    } else {
      BENCH_CHECK_ARG(false, "unknown argument '", argv[i], "'");
    }
  }
  if (o.help) return o;
  if (custom.any) {
    o.custom = custom.resolve();
    if (!seen.contains("--workload")) o.workloads.clear();
  }
  const std::vector<std::string> names = run_names(o);
  if (!o.json_path.empty())
    for (const std::string& name : names)
      require_folder("--json", output_path_for(o.json_path, name, names.size() > 1));
  if (!o.csv_path.empty()) require_folder("--csv", o.csv_path);
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
    BENCH_CHECK_ARG(env.rank < env.world_size, "environment variable RANK: expected 0..", env.world_size - 1,
                    ", given ", env.rank);
    env.local_rank = env_int("LOCAL_RANK", env.rank, 0);
    env.local_world_size = env_int("LOCAL_WORLD_SIZE", env.world_size, 1);
  }
  if (const char* commit = std::getenv("EPCOMM_COMMIT")) env.commit = commit;
  env.require_gpu = parse_bool_env("EPCOMM_REQUIRE_GPU", false);
  env.ranks_per_domain = env_int("EPCOMM_RANKS_PER_DOMAIN", 0, 0);
  BENCH_CHECK_ARG(env.ranks_per_domain <= kMaxRanksPerDomain,
                  "environment variable EPCOMM_RANKS_PER_DOMAIN: expected 0..", kMaxRanksPerDomain,
                  ", given ", env.ranks_per_domain);
  return env;
}

int resolve_ranks_per_domain(const Options& o, const BenchEnv& env) {
  BENCH_CHECK_ARG(
      o.ranks_per_domain == 0 || env.ranks_per_domain == 0 || o.ranks_per_domain == env.ranks_per_domain,
      "--ranks-per-domain ", o.ranks_per_domain, " and EPCOMM_RANKS_PER_DOMAIN=", env.ranks_per_domain,
      " disagree; the Buffer obeys the environment: give one, or the same G in both");
  const int G = o.ranks_per_domain > 0 ? o.ranks_per_domain : env.ranks_per_domain;
  if (G == 0) return 0;
  BENCH_CHECK_ARG(env.world_size % G == 0, "--ranks-per-domain ", G, ": must divide the ", env.world_size,
                  " ranks of the run (WORLD_SIZE)");
  BENCH_CHECK_ARG(env.local_world_size % G == 0, "--ranks-per-domain ", G, ": must divide the ",
                  env.local_world_size, " ranks of this host (LOCAL_WORLD_SIZE): a domain never spans hosts");
  BENCH_CHECK_ARG(!o.custom || o.custom->mode == Mode::kHighThroughput, "--mode ll with --ranks-per-domain ",
                  G, ": the bench does not run low-latency on multi-domain Buffers yet; run --mode ht");
  for (const int sms : o.sms)
    BENCH_CHECK_ARG(
        sms >= 2, "--sms ", sms, " with --ranks-per-domain ", G,
        ": a multi-domain call needs at least 2 SMs (a sender and a forwarder block per channel)");
  return G;
}

StartDecision decide_start(const GpuPresence& gpus, const BenchEnv& env, bool may_share) {
  StartDecision d;
  if (!gpus.no_gpu() && gpus.count_error != cudaSuccess) {
    d.failure = true;
    d.exit_code = kExitError;
    d.message = "cudaGetDeviceCount failed: " + gpus.error_name + ": " + gpus.error_text +
                " (not a missing GPU, so not skipped)";
    return d;
  }
  const int found = gpus.no_gpu() ? 0 : gpus.num_gpus;
  const bool one_each = found >= env.local_world_size && env.local_rank < found;
  if (found > 0 && (one_each || may_share)) {
    d.run = true;
    d.device = env.local_rank % found;
    return d;
  }
  const std::string why = gpus.no_driver() ? std::string("no NVIDIA driver (no GPU)")
                          : found == 0
                              ? std::string("no GPU found")
                              : std::to_string(found) + " GPU(s) found, " +
                                    std::to_string(std::max(env.local_world_size, env.local_rank + 1)) +
                                    " needed (one per local rank; --shared-gpu-timing times ranks sharing "
                                    "them, not NVLink timing)";
  if (env.require_gpu) {
    d.failure = true;
    d.exit_code = kExitError;
    d.message = why + ", and EPCOMM_REQUIRE_GPU is set: failing instead of skipping";
  } else {
    d.exit_code = kExitOk;
    d.message = "skipped: " + why + "; nothing to measure";
  }
  return d;
}

namespace {
// The first rank after `rank` on the same GPU, or -1.
int next_on_same_gpu(const std::vector<std::string>& gpu_of_rank, std::size_t rank) {
  for (std::size_t other = rank + 1; other < gpu_of_rank.size(); ++other)
    if (gpu_of_rank[other] == gpu_of_rank[rank]) return static_cast<int>(other);
  return -1;
}
}  // namespace

bool ranks_share_a_gpu(const std::vector<std::string>& gpu_of_rank) {
  for (std::size_t rank = 0; rank < gpu_of_rank.size(); ++rank)
    if (next_on_same_gpu(gpu_of_rank, rank) >= 0) return true;
  return false;
}

void check_gpu_sharing(const std::vector<std::string>& gpu_of_rank, bool may_share) {
  if (may_share) return;
  for (std::size_t rank = 0; rank < gpu_of_rank.size(); ++rank) {
    const int other = next_on_same_gpu(gpu_of_rank, rank);
    BENCH_CHECK_ARG(other < 0, "ranks ", rank, " and ", other, " run on one GPU (", gpu_of_rank[rank],
                    "): their times would not be NVLink times; pass --shared-gpu-timing to time them "
                    "anyway (every row then says so)");
  }
}

}  // namespace epcomm::bench
