// The doctor's CUDA IPC probe: a buffer per GPU mapped by a second process (probes.hpp).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/cuda_check.hpp"
#include "core/cuda_raii.hpp"
#include "doctor/probes.hpp"
#include "epcomm/error.hpp"

namespace epcomm::doctor {
namespace {

constexpr std::size_t kIpcBytes = std::size_t{1} << 20;  // per GPU; the child writes the second half
constexpr auto kIpcChildTimeout = std::chrono::seconds(60);

// The bytes each side writes, distinct per GPU so a mapping of the wrong buffer shows.
unsigned char parent_fill(int gpu) {
  return static_cast<unsigned char>(0x40 + gpu % 64);
}
unsigned char child_fill(int gpu) {
  return static_cast<unsigned char>(0xc0 + gpu % 64);
}

bool all_bytes_are(const std::vector<unsigned char>& bytes, unsigned char value) {
  return std::all_of(bytes.begin(), bytes.end(), [value](unsigned char b) { return b == value; });
}

}  // namespace

IpcFacts probe_ipc(int num_gpus, const Self& self) {
  IpcFacts f;
  f.num_gpus = num_gpus;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  launcher::LocalRunOptions child;
  child.command = {self.executable, "--ipc-child"};
  try {
    for (int g = 0; g < num_gpus; ++g) {
      EPCOMM_CUDA_CHECK(cudaSetDevice(g));
      buffers.push_back(std::make_unique<DeviceBuffer>(kIpcBytes));
      EPCOMM_CUDA_CHECK(cudaMemset(buffers.back()->get(), parent_fill(g), kIpcBytes));
      EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
      const cudaIpcMemHandle_t handle = ipc_handle_of(*buffers.back());
      child.command.push_back(to_hex(&handle, sizeof(handle)));
    }
  } catch (const Error& e) {
    f.parent_error = "preparing the buffers to share: " + e.message();
    return f;
  }
  child.num_ranks = 1;
  child.parent_environment = self.environment;
  child.timeout = kIpcChildTimeout;
  f.child = launcher::run_local(child);
  try {
    for (int g = 0; g < num_gpus; ++g) {
      std::vector<unsigned char> second_half(kIpcBytes / 2);
      EPCOMM_CUDA_CHECK(cudaSetDevice(g));
      EPCOMM_CUDA_CHECK(cudaMemcpy(second_half.data(),
                                   buffers[static_cast<std::size_t>(g)]->as<unsigned char>() + kIpcBytes / 2,
                                   second_half.size(), cudaMemcpyDeviceToHost));
      f.written_back.push_back(all_bytes_are(second_half, child_fill(g)));
    }
  } catch (const Error& e) {
    f.parent_error = "reading the shared buffers back: " + e.message();
  }
  return f;
}

int ipc_child_main(const std::vector<std::string>& handles_hex) {
  const int num_handles = static_cast<int>(handles_hex.size());
  try {
    int num_gpus = 0;
    EPCOMM_CUDA_CHECK(cudaGetDeviceCount(&num_gpus));
    if (num_handles != num_gpus || num_gpus == 0) {
      std::printf("%s\n", worker_line("ipc", Status::kFail,
                                      "the second process sees " + std::to_string(num_gpus) +
                                          " GPUs, the first " + std::to_string(num_handles))
                              .c_str());
      return 1;
    }
    for (int g = 0; g < num_gpus; ++g) {
      cudaIpcMemHandle_t handle{};
      if (!from_hex(handles_hex[static_cast<std::size_t>(g)], &handle, sizeof(handle))) {
        std::printf("%s\n", worker_line("ipc", Status::kFail, "a malformed handle argument").c_str());
        return 1;
      }
      const int from = (g + 1) % num_gpus;  // the mapping a peer rank makes
      EPCOMM_CUDA_CHECK(cudaSetDevice(from));
      const IpcMapping mapping(handle);
      std::vector<unsigned char> first_half(kIpcBytes / 2);
      EPCOMM_CUDA_CHECK(
          cudaMemcpy(first_half.data(), mapping.get(), first_half.size(), cudaMemcpyDeviceToHost));
      if (!all_bytes_are(first_half, parent_fill(g))) {
        std::printf("%s\n",
                    worker_line("ipc", Status::kFail,
                                "GPU " + std::to_string(g) + "'s buffer, mapped from GPU " +
                                    std::to_string(from) + ", does not hold what the first process wrote")
                        .c_str());
        return 1;
      }
      EPCOMM_CUDA_CHECK(cudaMemset(static_cast<unsigned char*>(mapping.get()) + kIpcBytes / 2, child_fill(g),
                                   kIpcBytes / 2));
      EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());
    }
  } catch (const Error& e) {
    std::printf("%s\n", worker_line("ipc", Status::kFail, e.message()).c_str());
    return 1;
  }
  std::printf("%s\n", worker_line("ipc", Status::kOk, "mapped").c_str());
  return 0;
}

}  // namespace epcomm::doctor
