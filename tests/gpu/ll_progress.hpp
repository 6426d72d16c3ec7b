// Progress lines of the low-latency GPU tests (stderr, flushed at once, so epcomm-run streams them
// with the rank's prefix): what each case is doing, and, while the device has not finished, a line
// every few seconds naming what it waits for. A run that stops can then be told from a slow one
// (ranks sharing one GPU take turns on it), and the phase it stopped in is named. On in the program
// across NVLink domains (gpu_test_ll_md), elsewhere with EPCOMM_TEST_PROGRESS=1; off, nothing is
// printed and the waits are plain synchronisations.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "core/cuda_check.hpp"
#include "harness.hpp"

namespace epcomm::test {

inline bool ll_progress_on() {
#if defined(EPCOMM_TEST_LL_MD)
  return true;
#else
  static const bool on = [] {
    const char* value = std::getenv("EPCOMM_TEST_PROGRESS");
    return value != nullptr && std::strcmp(value, "1") == 0;
  }();
  return on;
#endif
}

// Seconds since the first progress line of this process.
inline double ll_progress_clock() {
  static const auto start = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One line: the time, the case and `what` (the rank comes from epcomm-run's prefix, and here too
// for logs read without it).
inline void ll_progress(const std::string& what) {
  if (!ll_progress_on()) return;
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::fprintf(stderr, "[ll progress] rank %d, %.1f s, %s: %s\n", gpu_env().rank, ll_progress_clock(),
               test != nullptr ? test->name() : "(no case)", what.c_str());
  std::fflush(stderr);
}

// Seconds between "still waiting" lines.
inline constexpr int kLlProgressHeartbeatS = 10;

// True once every operation queued on `stream` has finished; any error but "not yet" is thrown.
inline bool ll_stream_done(cudaStream_t stream) {
  const cudaError_t status = cudaStreamQuery(stream);
  if (status == cudaErrorNotReady) return false;
  EPCOMM_CUDA_CHECK(status);
  return true;
}

// Waits for the test's stream and the Buffer's communication stream, then the whole device. With
// progress on, names `what` it waits for, every kLlProgressHeartbeatS while it lasts. Unbounded on
// purpose: the kernels end within their own timeouts (BufferOptions::timeout_ms) and epcomm-run's
// --timeout ends a program that does not; these lines say where it was.
inline void ll_wait_device(cudaStream_t comm, const char* what) {
  const cudaStream_t stream = gpu_env().stream;
  if (ll_progress_on()) {
    ll_progress(std::string("waiting for the device: ") + what);
    const auto start = std::chrono::steady_clock::now();
    auto next = start + std::chrono::seconds(kLlProgressHeartbeatS);
    while (!ll_stream_done(stream) || !ll_stream_done(comm)) {
      if (std::chrono::steady_clock::now() >= next) {
        const auto waited = std::chrono::duration_cast<std::chrono::seconds>(next - start).count();
        ll_progress("still waiting for the device after " + std::to_string(waited) + " s: " + what);
        next += std::chrono::seconds(kLlProgressHeartbeatS);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
  ll_progress(std::string("device done: ") + what);
}

}  // namespace epcomm::test
