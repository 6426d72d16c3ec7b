// epcomm-faults: the fault matrix of issue 22 on one machine (ranks may share one GPU).
//
//   epcomm-faults [--cases WORD,...] [--timeout-ms 3000] [--margin-ms 2000] [--startup-ms 30000]
//                 [--ranks-per-domain G] [--out DIR] [--json FILE]
//   epcomm-faults --list
//   --ranks-per-domain 1: the two ranks form two NVLink domains, so every phase runs its multi-domain
//   path (high throughput through NVSHMEM rings, low latency by NVSHMEM puts); only in the build that
//   links NVSHMEM, epcomm-faults-md (-DEPCOMM_WITH_NVSHMEM=ON).
//   --rank-command PROGRAM runs PROGRAM (with the same arguments) as each rank instead of this binary's
//   rank mode, and needs no GPU: how the CPU tests drive the driver with scripted ranks.
//
// For each case of fault_cases.cpp it starts two fresh rank processes of itself (--rank-case NAME),
// with epcomm-run's environment, under a watchdog (watchdog.hpp): rank 1 commits the fault, rank 0
// records what it observed; then judges it (fault_report.cpp). Prints a table, writes the JSON, and
// exits 1 when any case failed, 77 without a GPU (1 with EPCOMM_REQUIRE_GPU=1).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "epcomm/gpu_presence.hpp"
#include "faults/fault_rank.hpp"
#include "faults/fault_report.hpp"
#include "faults/watchdog.hpp"
#include "gpu_gate.hpp"

extern char** environ;

namespace {

namespace faults = epcomm::faults;

struct Args {
  std::string cases;
  std::int64_t timeout_ms = 3000;
  std::int64_t margin_ms = 2000;    // the survivor's error may come this long after the timeout
  std::int64_t startup_ms = 30000;  // a case's processes get this plus three timeouts to end
  int ranks_per_domain = 0;         // > 0: the ranks form NVLink domains of this many
  std::string out = "faults-out";
  std::string json;
  bool list = false;
  std::string rank_command;  // a substitute for the rank mode (tests)
  std::string rank_case;     // rank mode
  std::string dir;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw epcomm::Error(epcomm::ErrorCategory::kInvalidArgument, arg + " needs a value", __FILE__,
                            __LINE__);
      return argv[++i];
    };
    if (arg == "--cases")
      a.cases = value();
    else if (arg == "--timeout-ms")
      a.timeout_ms = std::stoll(value());
    else if (arg == "--margin-ms")
      a.margin_ms = std::stoll(value());
    else if (arg == "--startup-ms")
      a.startup_ms = std::stoll(value());
    else if (arg == "--ranks-per-domain")
      a.ranks_per_domain = std::stoi(value());
    else if (arg == "--out")
      a.out = value();
    else if (arg == "--json")
      a.json = value();
    else if (arg == "--list")
      a.list = true;
    else if (arg == "--rank-case")
      a.rank_case = value();
    else if (arg == "--rank-command")
      a.rank_command = value();
    else if (arg == "--dir")
      a.dir = value();
    else
      throw epcomm::Error(epcomm::ErrorCategory::kInvalidArgument, "unknown argument " + arg, __FILE__,
                          __LINE__);
  }
  return a;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "epcomm-faults";
}

// Runs one case's two ranks and reads back what they left.
faults::Observation run_one(const faults::Case& c, const Args& a) {
  const std::string dir = a.out + "/" + faults::case_name(c);
  ::mkdir(dir.c_str(), 0755);
  std::remove((dir + "/" + faults::kObservationFile).c_str());
  std::remove((dir + "/" + faults::kFaultTimeFile).c_str());
  std::remove((dir + "/" + faults::kPeerErrorFile).c_str());
  faults::RankRunOptions o;
  o.command = {a.rank_command.empty() ? self_path() : a.rank_command,
               "--rank-case",
               faults::case_name(c),
               "--dir",
               dir,
               "--timeout-ms",
               std::to_string(a.timeout_ms),
               "--ranks-per-domain",
               std::to_string(a.ranks_per_domain)};
  for (char** e = environ; *e; ++e) o.parent_environment.emplace_back(*e);
  o.extra_environment = {"EPCOMM_TIMEOUT_MS=" + std::to_string(a.timeout_ms),
                         "EPCOMM_BOOTSTRAP_TIMEOUT_MS=" + std::to_string(a.timeout_ms),
                         // The library's own override (env.cpp) agrees with what the ranks pass.
                         "EPCOMM_RANKS_PER_DOMAIN=" + std::to_string(a.ranks_per_domain)};
  // Start-up (CUDA, the Buffer) plus up to three timeouts (the call, the carry-on, the teardown).
  o.bound = std::chrono::milliseconds(3 * a.timeout_ms + a.startup_ms);
  o.log_dir = dir;
  const std::vector<faults::RankEnding> endings = faults::run_ranks(o);
  faults::Observation obs = faults::parse_observation(read_file(dir + "/" + faults::kObservationFile));
  const std::string fault_ns = read_file(dir + "/" + faults::kFaultTimeFile);
  obs.fault_ns = std::strtoll(fault_ns.c_str(), nullptr, 10);  // none or garbage: 0, "no fault time"
  obs.peer_error = read_file(dir + "/" + faults::kPeerErrorFile);
  obs.survivor_exited = endings[0].ended_on_its_own;
  obs.survivor_ending = endings[0].description;
  obs.peer_ending = endings[1].description;
  return obs;
}

// Exits (77 or 1) when this machine cannot run the ranks; -1 to go on.
int gpu_gate_exit(const Args& a) {
  if (!a.rank_command.empty()) return -1;  // scripted ranks need no GPU
  epcomm::test::GateInput gate;
  static_cast<epcomm::GpuPresence&>(gate) = epcomm::probe_gpu_presence();
  gate.world = 2;
  gate.share_gpus = true;  // the two ranks may share one GPU
  gate.require_gpu = env_int("EPCOMM_REQUIRE_GPU", 0) != 0;
  const epcomm::test::GateDecision decision = epcomm::test::gpu_gate(gate);
  if (decision.exit_code >= 0) std::printf("epcomm-faults: %s\n", decision.message.c_str());
  return decision.exit_code;
}

#ifdef EPCOMM_FAULTS_WITH_NVSHMEM
constexpr bool kWithNvshmem = true;
#else
constexpr bool kWithNvshmem = false;
#endif

int drive(const Args& a) {
  if (a.ranks_per_domain < 0 || (a.ranks_per_domain > 0 && 2 % a.ranks_per_domain != 0))
    throw epcomm::Error(epcomm::ErrorCategory::kInvalidArgument,
                        "--ranks-per-domain: 0 (one domain) or 1 (two domains of one rank) for 2 ranks, got " +
                            std::to_string(a.ranks_per_domain),
                        __FILE__, __LINE__);
  // Scripted ranks (tests) need no library; the rank mode needs NVSHMEM for two domains.
  if (a.ranks_per_domain == 1 && a.rank_command.empty() && !kWithNvshmem)
    throw epcomm::Error(epcomm::ErrorCategory::kUnsupported,
                        "--ranks-per-domain 1: two NVLink domains need NVSHMEM, which this epcomm-faults does not "
                        "link; run epcomm-faults-md (built with -DEPCOMM_WITH_NVSHMEM=ON)",
                        __FILE__, __LINE__);
  if (const int code = gpu_gate_exit(a); code >= 0) return code;
  ::mkdir(a.out.c_str(), 0755);
  cudaDeviceProp prop{};
  const std::string device =
      a.rank_command.empty() && cudaGetDeviceProperties(&prop, 0) == cudaSuccess ? prop.name : "";
  const double bound_ms = static_cast<double>(a.timeout_ms + a.margin_ms);
  const std::string path = a.json.empty() ? a.out + "/faults.json" : a.json;
  std::vector<faults::CaseResult> results;
  for (const faults::Case& c : faults::select_cases(a.cases, a.ranks_per_domain == 1)) {
    faults::Observation obs;
    if (c.expect.outcome != faults::Outcome::kSkipped) obs = run_one(c, a);
    results.push_back({c, obs, faults::judge(c, obs, bound_ms)});
    std::printf("%-32s %s\n", faults::case_name(c).c_str(), results.back().verdict.status.c_str());
    std::fflush(stdout);
    // Rewritten after every case: a run stopped from outside still leaves what it learned.
    std::ofstream(path) << faults::report_json({a.timeout_ms, bound_ms, 2, device, a.ranks_per_domain}, results);
  }
  std::printf("\n%s\nJSON: %s\n", faults::report_table(results).c_str(), path.c_str());
  return faults::report_exit_code(results);
}

// A driver stopped from outside (timeout, ^C) takes the case's ranks with it.
void on_stop_signal(int sig) {
  faults::kill_running_ranks();
  ::_exit(128 + sig);
}

int rank_main(const Args& a) {
  faults::RankContext ctx{.rank = env_int("RANK", 0),
                          .world = env_int("WORLD_SIZE", 1),
                          .local_rank = env_int("LOCAL_RANK", 0),
                          .timeout_ms = a.timeout_ms,
                          .ranks_per_domain = a.ranks_per_domain,
                          .dir = a.dir};
  return faults::run_case_rank(faults::find_case(a.rank_case), ctx);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.list) {
      for (const auto& c : faults::select_cases("", a.ranks_per_domain == 1))
        std::printf("%-32s %s%s\n", faults::case_name(c).c_str(), faults::to_string(c.expect.outcome),
                    c.expect.skip_reason.empty() ? "" : (": " + c.expect.skip_reason).c_str());
      return 0;
    }
    if (!a.rank_case.empty()) return rank_main(a);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, on_stop_signal);
    return drive(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epcomm-faults: %s\n", e.what());
    return 1;
  }
}
