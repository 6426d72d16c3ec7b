// When a GPU test program runs, skips (exit 77) or fails, as host functions that
// tests/cpu/test_gpu_checks.cpp checks without a GPU. harness.cpp's main() applies them.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "epcomm/gpu_presence.hpp"

namespace epcomm::test {

inline constexpr int kExitPass = 0;
inline constexpr int kExitFail = 1;
inline constexpr int kExitSkip = 77;  // ctest's SKIP_RETURN_CODE; epcomm-run's when every rank skipped

// What the program learned about the machine before any test: whether it has GPUs
// (epcomm::probe_gpu_presence) and how the run wants them.
struct GateInput : GpuPresence {
  int world = 1;             // ranks of this run
  bool share_gpus = false;   // EPCOMM_TEST_SHARE_GPUS=1
  bool require_gpu = false;  // EPCOMM_REQUIRE_GPU=1: a skip is a failure
};

struct GateDecision {
  int exit_code = -1;  // -1: run the tests; else exit with it after printing `message`
  std::string message;
};

// Skips only where there is no GPU: cudaErrorNoDevice, a count of 0, or no CUDA driver installed
// at all (the runtime then says cudaErrorInsufficientDriver). Any other error (a driver older than
// the runtime, a broken install) fails with the CUDA text, as does any skip under require_gpu.
inline GateDecision gpu_gate(const GateInput& in) {
  std::string skip;
  if (in.no_gpu()) {
    skip = in.no_driver() ? "skipped: no GPU (no CUDA driver installed)" : "skipped: no GPU";
  } else if (in.count_error != cudaSuccess) {
    return {kExitFail, "cudaGetDeviceCount failed: " + in.error_text};
  } else if (in.num_gpus < in.world && !in.share_gpus) {
    skip = "skipped: needs " + std::to_string(in.world) + " GPUs, found " + std::to_string(in.num_gpus) +
           " (EPCOMM_TEST_SHARE_GPUS=1 shares them)";
  }
  if (skip.empty()) return {};
  if (in.require_gpu) return {kExitFail, "EPCOMM_REQUIRE_GPU=1, so this fails: " + skip};
  return {kExitSkip, skip};
}

// One rank's result after its tests: a failure; with require_gpu, any skipped case is one too (a
// run that backs a claim ran every case); a run whose every case skipped is a skip.
inline int rank_exit_code(bool any_failed, int num_passed, int num_skipped, bool require_gpu) {
  if (any_failed || (require_gpu && num_skipped > 0)) return kExitFail;
  if (num_passed == 0 && num_skipped > 0) return kExitSkip;
  return kExitPass;
}

// The program's exit code from every rank's (all ranks exit alike): a skip only when every rank
// skipped, a pass only when every rank passed; any other mix is a failure.
inline int program_exit_code(const std::vector<int>& rank_codes) {
  bool all_pass = true, all_skip = true;
  for (int c : rank_codes) {
    all_pass = all_pass && c == kExitPass;
    all_skip = all_skip && c == kExitSkip;
  }
  if (all_pass) return kExitPass;
  return all_skip ? kExitSkip : kExitFail;
}

}  // namespace epcomm::test
