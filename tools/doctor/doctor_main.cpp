// epcomm-doctor: checks this machine for epcomm and says what is wrong, one line per check
// ("ok|FAIL|skip  <check>: <what was seen>"), in order: CUDA driver and runtime, GPUs and compute
// capability, peers (access, NVLink topology, measured bandwidth), CUDA IPC between processes,
// NVSHMEM, the launch environment, then a tiny high-throughput dispatch/combine and a low-latency
// round trip on every local GPU, checked against the CPU reference. Exit codes: checks.hpp.
//
// The decisions are checks.hpp's pure functions; the probes (probes.hpp) gather the facts. The
// doctor re-executes itself for the parts that need other processes: --ipc-child HANDLE... (the
// second process of the IPC check) and --worker (one rank of the end-to-end run).
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/check.hpp"
#include "core/env.hpp"
#include "doctor/checks.hpp"
#include "doctor/probes.hpp"
#include "epcomm/error.hpp"

#ifndef EPCOMM_DOCTOR_CUDA_ARCHS
#define EPCOMM_DOCTOR_CUDA_ARCHS "90a"  // CMake passes EPCOMM_CUDA_ARCHS
#endif

extern char** environ;

namespace {

namespace doctor = epcomm::doctor;
using doctor::CheckResult;
using doctor::Status;

constexpr const char* kUsage =
    "usage: epcomm-doctor [--min-peer-gbps GBPS]\n"
    "\n"
    "Checks this machine for epcomm, one line per check (ok, FAIL or skip, then what was seen):\n"
    "CUDA driver and runtime, GPUs and compute capability, peer access, NVLink topology and peer\n"
    "copy bandwidth, CUDA IPC between processes, NVSHMEM, the launch environment, then a tiny\n"
    "dispatch/combine and low-latency round trip on every local GPU checked against the CPU\n"
    "reference. Run it once per machine, not under epcomm-run.\n"
    "\n"
    "  --min-peer-gbps GBPS  a GPU pair copying slower than this fails (default 100)\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit code: 0 every check passed or was skipped; 1 a check failed; 2 bad command line;\n"
    "77 no GPU here (nothing GPU-side was checked). EPCOMM_REQUIRE_GPU=1 makes no GPU a failure (1).\n";

std::string self_executable() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string("epcomm-doctor");
}

struct Options {
  double min_peer_gbps = doctor::kDefaultMinPeerGBps;
  bool help = false;
};

// Throws epcomm::Error (kInvalidArgument) naming the bad argument.
Options parse_args(const std::vector<std::string>& args) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      o.help = true;
    } else if (arg == "--min-peer-gbps" && i + 1 < args.size()) {
      const std::string& text = args[++i];
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), o.min_peer_gbps);
      EPCOMM_CHECK_ARG(ec == std::errc() && end == text.data() + text.size() &&
                           std::isfinite(o.min_peer_gbps) && o.min_peer_gbps >= 0,
                       "--min-peer-gbps expects a number >= 0, got '", text, "'");
    } else {
      EPCOMM_THROW(epcomm::ErrorCategory::kInvalidArgument, "unknown or incomplete option '", arg, "'");
    }
  }
  return o;
}

// Runs `probe`, turning an epcomm::Error it throws into a FAIL of `check`.
template <typename Probe>
CheckResult guarded(const char* check, Probe&& probe) {
  try {
    return probe();
  } catch (const epcomm::Error& e) {
    return {Status::kFail, check, e.message()};
  } catch (const std::exception& e) {
    return {Status::kFail, check, std::string("the probe failed: ") + e.what()};
  }
}

// Destroys this process's CUDA contexts, so that the workers alone hold the GPUs (a GPU in
// exclusive-process compute mode admits one process).
void release_gpus(int num_gpus) {
  for (int d = 0; d < num_gpus; ++d) {
    if (cudaSetDevice(d) == cudaSuccess) cudaDeviceReset();
  }
  cudaGetLastError();
}

int run_checks(const Options& options, const doctor::Self& self, const doctor::Environment& env,
               bool require_gpu) {
  std::vector<CheckResult> results;
  const auto emit = [&](CheckResult r) {
    std::printf("%s\n", doctor::format_line(r).c_str());
    std::fflush(stdout);
    results.push_back(std::move(r));
  };
  const auto failed = [&](const char* check) {
    for (const CheckResult& r : results) {
      if (r.check == check && r.status == Status::kFail) return true;
    }
    return false;
  };
  const doctor::CudaFacts cuda = doctor::probe_cuda(require_gpu);
  emit(doctor::decide_cuda(cuda));
  const bool no_gpu = doctor::no_gpu(cuda);
  const bool have_gpus = !no_gpu && cuda.count_error == cudaSuccess && !failed("cuda");
  const std::string not_checked = no_gpu ? "not checked: no GPU" : "not checked: CUDA is not usable (above)";
  const int n = have_gpus ? cuda.num_gpus : 0;
  if (have_gpus) {
    emit(guarded("gpus",
                 [&] { return doctor::decide_gpus(doctor::probe_gpus(n), EPCOMM_DOCTOR_CUDA_ARCHS); }));
    emit(guarded("peers",
                 [&] { return doctor::decide_peers(doctor::probe_peers(n, options.min_peer_gbps)); }));
    emit(guarded("ipc", [&] { return doctor::decide_ipc(doctor::probe_ipc(n, self)); }));
  } else {
    for (const char* check : {"gpus", "peers", "ipc"}) emit({Status::kSkip, check, not_checked});
  }
  emit(guarded("nvshmem", [&] { return doctor::decide_nvshmem(doctor::probe_nvshmem(env)); }));
  emit(doctor::decide_launch_env(env, have_gpus ? n : -1));
  std::string blocked = have_gpus ? "" : not_checked;
  for (const char* check : {"gpus", "peers", "ipc"}) {
    if (blocked.empty() && failed(check)) blocked = std::string("not run: '") + check + "' failed (above)";
  }
  if (blocked.empty()) {
    release_gpus(n);
    const epcomm::launcher::LocalRun run = doctor::run_workers(n, self);
    emit(doctor::decide_worker_phase(run, "ht", "dispatch/combine", false));
    emit(doctor::decide_worker_phase(run, "ll", "low-latency", true));
  } else {
    emit({Status::kSkip, "dispatch/combine", blocked});
    emit({Status::kSkip, "low-latency", blocked});
  }
  return doctor::exit_code(results, no_gpu);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--ipc-child") {
    return doctor::ipc_child_main(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (!args.empty() && args[0] == "--worker") return doctor::worker_main();
  Options options;
  bool require_gpu = false;
  doctor::Self self{self_executable(), {}};
  for (char** e = environ; *e != nullptr; ++e) self.environment.emplace_back(*e);
  const doctor::Environment env = doctor::environment_of(self.environment);
  try {
    options = parse_args(args);
    // Read outside the library's registry, like the GPU tests' harness; the registry's parser.
    const auto it = env.find("EPCOMM_REQUIRE_GPU");
    require_gpu = it != env.end() && !it->second.empty() && epcomm::env::parse_bool(it->first, it->second);
  } catch (const epcomm::Error& e) {
    std::fprintf(stderr, "epcomm-doctor: %s\n\n%s", e.message().c_str(), kUsage);
    return doctor::kExitUsage;
  }
  if (options.help) {
    std::printf("%s", kUsage);
    return doctor::kExitOk;
  }
  return run_checks(options, self, env, require_gpu);
}
