// The doctor's verdicts on CUDA, the GPUs, IPC and the worker runs (checks.hpp).
#include "doctor/checks.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <sstream>

namespace epcomm::doctor {
namespace {

// What epcomm's device code needs of a GPU, for the messages.
constexpr std::string_view kDeviceCodeNote =
    "(sm_90a code runs on compute capability 9.0 only: H100, H200, GH200)";

std::string gib(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// The last non-empty line of `text` (trimmed), for naming what a process said last.
std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r'))
    text.remove_suffix(1);
  const std::size_t nl = text.rfind('\n');
  return std::string(nl == std::string_view::npos ? text : text.substr(nl + 1));
}

}  // namespace

const char* to_string(Status status) noexcept {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kFail:
      return "FAIL";
    case Status::kSkip:
      return "skip";
  }
  return "?";
}

std::string format_line(const CheckResult& result) {
  std::string status = to_string(result.status);
  status.resize(6, ' ');
  return status + result.check + ": " + result.seen;
}

int exit_code(const std::vector<CheckResult>& results, bool no_gpu) {
  const bool failed = std::any_of(results.begin(), results.end(),
                                  [](const CheckResult& r) { return r.status == Status::kFail; });
  if (failed) return kExitFailed;
  return no_gpu ? kExitNoGpu : kExitOk;
}

// ---- CUDA ---------------------------------------------------------------------------------------

std::string cuda_version_text(int version) {
  if (version <= 0) return "none";
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

bool no_gpu(const CudaFacts& f) {
  return f.no_gpu();
}

CheckResult decide_cuda(const CudaFacts& f) {
  CheckResult r{Status::kOk, "cuda", ""};
  const std::string runtime = "CUDA runtime " + cuda_version_text(f.runtime_version);
  if (no_gpu(f)) {
    r.seen = std::string("no GPU") +
             (f.no_driver() ? " (no CUDA driver installed: libcuda.so.1 cannot be loaded)"
                            : " (the driver sees none)") +
             "; " + runtime;
    if (f.require_gpu) {
      r.status = Status::kFail;
      r.seen += "; EPCOMM_REQUIRE_GPU=1, so a machine without a GPU fails";
    } else {
      r.status = Status::kSkip;
      r.seen += "; the GPU checks are skipped (exit " + std::to_string(kExitNoGpu) + ")";
    }
    return r;
  }
  const std::string driver = "driver supports CUDA " + cuda_version_text(f.driver_version);
  if (f.count_error == cudaErrorInsufficientDriver ||
      (f.driver_version > 0 && f.driver_version < f.runtime_version)) {
    r.status = Status::kFail;
    r.seen = "the driver is older than the runtime: " + driver + ", epcomm was built with " + runtime +
             "; install a driver for CUDA " + cuda_version_text(f.runtime_version) +
             " or newer (or the CUDA forward-compatibility package)";
    return r;
  }
  if (f.count_error != cudaSuccess) {
    r.status = Status::kFail;
    r.seen = "cudaGetDeviceCount failed: " + f.error_text + " (" + driver + ", " + runtime + ")";
    return r;
  }
  r.seen = driver + ", " + runtime + ", " + std::to_string(f.num_gpus) + (f.num_gpus == 1 ? " GPU" : " GPUs");
  return r;
}

// ---- GPUs ---------------------------------------------------------------------------------------

bool arch_runs_on(std::string_view arch, int major, int minor) {
  int number = 0;
  const auto [end, ec] = std::from_chars(arch.data(), arch.data() + arch.size(), number);
  if (ec != std::errc() || number < 10) return false;
  const std::string_view suffix(end, static_cast<std::size_t>(arch.data() + arch.size() - end));
  const int arch_major = number / 10, arch_minor = number % 10;
  const bool at_least = major > arch_major || (major == arch_major && minor >= arch_minor);
  if (suffix == "a" || suffix == "a-real") return major == arch_major && minor == arch_minor;
  if (suffix == "f" || suffix == "f-real" || suffix == "-real") return major == arch_major && at_least;
  if (suffix.empty() || suffix == "-virtual") return at_least;
  return false;  // a spelling this function does not know: say it cannot run rather than guess
}

CheckResult decide_gpus(const std::vector<GpuFacts>& gpus, std::string_view built_archs) {
  CheckResult r{Status::kOk, "gpus", ""};
  std::vector<std::string> archs;
  for (std::size_t start = 0; start <= built_archs.size();) {
    const std::size_t semi = std::min(built_archs.find(';', start), built_archs.size());
    if (semi > start) archs.emplace_back(built_archs.substr(start, semi - start));
    start = semi + 1;
  }
  std::string problems, listed;
  for (const GpuFacts& g : gpus) {
    const std::string cc = std::to_string(g.major) + "." + std::to_string(g.minor);
    const std::string who =
        "GPU " + std::to_string(g.index) + " (" + g.name + ", compute capability " + cc + ")";
    const bool runs = std::any_of(archs.begin(), archs.end(),
                                  [&](const std::string& a) { return arch_runs_on(a, g.major, g.minor); });
    if (!runs) {
      problems += (problems.empty() ? "" : "; ") + who + " cannot run epcomm's device code, built for " +
                  std::string(built_archs) + " " + std::string(kDeviceCodeNote) +
                  "; rebuild with -DEPCOMM_CUDA_ARCHS for this GPU, if epcomm supports it";
    }
    if (g.compute_mode == cudaComputeModeProhibited) {
      problems += (problems.empty() ? "" : "; ") + who +
                  " is in compute mode Prohibited (no process may use it): nvidia-smi -c DEFAULT";
    }
    if (listed.empty()) {
      listed = std::to_string(gpus.size()) + " x " + g.name + " (compute capability " + cc + ", " +
               std::to_string(g.num_sms) + " SMs, " + gib(g.total_bytes) + ")";
    } else if (g.name != gpus.front().name || g.major != gpus.front().major ||
               g.minor != gpus.front().minor) {
      listed += ", mixed: GPU " + std::to_string(g.index) + " is " + g.name + " " + cc;
    }
  }
  if (gpus.empty()) return {Status::kFail, "gpus", "no GPU could be queried"};
  if (!problems.empty()) return {Status::kFail, "gpus", problems};
  r.seen = listed + "; device code built for " + std::string(built_archs) + " runs on every one";
  const bool exclusive = std::any_of(gpus.begin(), gpus.end(), [](const GpuFacts& g) {
    return g.compute_mode == cudaComputeModeExclusiveProcess;
  });
  if (exclusive) {
    r.seen +=
        "; compute mode Exclusive Process (one process per GPU: fine for epcomm's ranks, but the IPC "
        "check below needs two)";
  }
  return r;
}

// ---- IPC ----------------------------------------------------------------------------------------

std::string to_hex(const void* data, std::size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes * 2);
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    text += kDigits[p[i] >> 4];
    text += kDigits[p[i] & 15];
  }
  return text;
}

bool from_hex(std::string_view text, void* out, std::size_t bytes) {
  if (text.size() != bytes * 2) return false;
  auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto* p = static_cast<unsigned char*>(out);
  for (std::size_t i = 0; i < bytes; ++i) {
    const int hi = digit(text[2 * i]), lo = digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    p[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

CheckResult decide_ipc(const IpcFacts& f) {
  constexpr std::string_view kHint =
      " (CUDA IPC needs the ranks on one host, as one user; in a container, share the host's IPC and PID "
      "namespaces: docker --ipc=host --pid=host)";
  if (!f.parent_error.empty()) return {Status::kFail, "ipc", f.parent_error};
  CheckResult child = decide_worker_phase(f.child, "ipc", "ipc", true);
  if (child.status != Status::kOk) {
    child.seen += std::string(kHint);
    return child;
  }
  for (std::size_t g = 0; g < f.written_back.size(); ++g) {
    if (!f.written_back[g]) {
      return {Status::kFail, "ipc",
              "the second process's writes through its mapping of GPU " + std::to_string(g) +
                  "'s buffer did not arrive in that buffer" + std::string(kHint)};
    }
  }
  const int n = f.num_gpus;
  return {Status::kOk, "ipc",
          (n == 1 ? std::string("a second process opened a buffer of the GPU")
                  : "a second process opened a buffer of each of the " + std::to_string(n) +
                        " GPUs from the next GPU") +
              " (cudaIpcOpenMemHandle), read what this one wrote and wrote back"};
}

// ---- worker runs --------------------------------------------------------------------------------

std::string worker_line(std::string_view phase, Status status, std::string_view detail) {
  return "@doctor " + std::string(phase) + " " + to_string(status) + " " + std::string(detail);
}

CheckResult decide_worker_phase(const launcher::LocalRun& run, std::string_view phase, std::string_view check,
                                bool last_phase) {
  const std::string tag = "@doctor " + std::string(phase) + " ";
  const std::string name(check);
  if (run.output.empty()) return {Status::kFail, name, "no process ran"};
  const auto who = [&](std::size_t rank) {
    return run.output.size() > 1 ? "rank " + std::to_string(rank) + ": " : std::string();
  };
  // [rank]: the status word and detail of its last line for the phase; "" when it printed none.
  std::vector<std::pair<std::string, std::string>> said;
  for (const std::string& out : run.output) {
    std::size_t at = out.rfind(tag);
    while (at != std::string::npos && at > 0 && out[at - 1] != '\n') at = out.rfind(tag, at - 1);
    if (at == std::string::npos) {
      said.emplace_back();
      continue;
    }
    std::string_view line(out);
    line = line.substr(at + tag.size());
    line = line.substr(0, line.find('\n'));
    const std::size_t space = line.find(' ');
    said.emplace_back(
        std::string(line.substr(0, space)),
        std::string(space == std::string_view::npos ? std::string_view() : line.substr(space + 1)));
  }
  // A rank's own failure first: ranks that said nothing were often stopped because of it.
  for (std::size_t rank = 0; rank < said.size(); ++rank) {
    const auto& [status, detail] = said[rank];
    if (status == "FAIL") return {Status::kFail, name, who(rank) + detail};
    if (!status.empty() && status != "ok" && status != "skip") {
      return {Status::kFail, name, who(rank) + "said '" + status + " " + detail + "'"};
    }
  }
  for (std::size_t rank = 0; rank < said.size(); ++rank) {
    if (!said[rank].first.empty()) continue;
    std::string seen = "rank " + std::to_string(rank) + " reported nothing";
    if (run.timed_out) seen += " (the run timed out)";
    if (auto summary = launcher::failure_summary(run.in_reap_order)) seen += "; " + *summary;
    const std::string last = last_line(run.output[rank]);
    if (!last.empty()) seen += "; its last line: " + last;
    return {Status::kFail, name, seen};
  }
  for (const auto& [status, detail] : said) {
    if (status == "skip") return {Status::kSkip, name, detail};
  }
  if (auto summary = launcher::failure_summary(run.in_reap_order); summary && last_phase) {
    return {Status::kFail, name, "every rank reported ok, but then " + *summary};  // a crash on the way out
  }
  return {Status::kOk, name, said[0].second + (said.size() > 1 ? " (every rank)" : "")};
}

}  // namespace epcomm::doctor
