// The doctor's CUDA probes: versions, GPUs, peers, topology and peer bandwidth (probes.hpp).
#include <cuda_runtime_api.h>

#include <cstdio>
#include <map>
#include <memory>

#include "core/cuda_check.hpp"
#include "core/cuda_raii.hpp"
#include "doctor/probes.hpp"
#include "epcomm/error.hpp"
#include "epcomm/gpu_presence.hpp"

namespace epcomm::doctor {
namespace {

// stdout of a shell command, or empty with `ok` false when it could not run or failed.
std::string command_output(const char* command, bool& ok) {
  ok = false;
  FILE* pipe = ::popen(command, "r");
  if (pipe == nullptr) return {};
  std::string text;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) text.append(buf, n);
  ok = ::pclose(pipe) == 0;
  return text;
}

// Link types between CUDA devices [i][j] from nvidia-smi, or a note saying why there are none.
std::vector<std::vector<std::string>> cuda_links(int num_gpus, std::string& note) {
  bool ok = false;
  const std::string topo = command_output("nvidia-smi topo -m 2>/dev/null", ok);
  if (!ok) {
    note = "nvidia-smi topo -m did not run";
    return {};
  }
  const auto smi_matrix = parse_topo_matrix(topo);
  const std::string ids =
      command_output("nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader 2>/dev/null", ok);
  std::map<std::string, int> smi_index_of_bus;  // normalized bus id -> nvidia-smi index
  for (std::size_t start = 0; ok && start < ids.size();) {
    const std::size_t nl = std::min(ids.find('\n', start), ids.size());
    const std::string line = ids.substr(start, nl - start);
    const std::size_t comma = line.find(',');
    const std::size_t bus = comma == std::string::npos ? comma : line.find_first_not_of(' ', comma + 1);
    if (bus != std::string::npos)
      smi_index_of_bus[normalize_bus_id(line.substr(bus))] = std::atoi(line.c_str());
    start = nl + 1;
  }
  std::vector<int> smi_of_cuda(static_cast<std::size_t>(num_gpus), -1);
  for (int d = 0; d < num_gpus; ++d) {
    char bus[32] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof(bus), d) != cudaSuccess) continue;
    const auto it = smi_index_of_bus.find(normalize_bus_id(bus));
    if (it != smi_index_of_bus.end() && it->second < static_cast<int>(smi_matrix.size())) {
      smi_of_cuda[static_cast<std::size_t>(d)] = it->second;
    }
  }
  for (int s : smi_of_cuda) {
    if (s < 0) {
      note = "could not match nvidia-smi's GPUs to CUDA's by PCI bus id";
      return {};
    }
  }
  std::vector<std::vector<std::string>> links(static_cast<std::size_t>(num_gpus),
                                              std::vector<std::string>(static_cast<std::size_t>(num_gpus)));
  for (int i = 0; i < num_gpus; ++i) {
    for (int j = 0; j < num_gpus; ++j) {
      links[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)] =
          smi_matrix[static_cast<std::size_t>(smi_of_cuda[static_cast<std::size_t>(i)])]
                    [static_cast<std::size_t>(smi_of_cuda[static_cast<std::size_t>(j)])];
    }
  }
  return links;
}

// GB/s (1e9 bytes/s) of kPeerCopiesTimed copies src -> dst after a warm-up, on a stream of src.
double measure_peer_copy(int src, int dst, const DeviceBuffer& from, const DeviceBuffer& to) {
  EPCOMM_CUDA_CHECK(cudaSetDevice(src));
  const cudaError_t enabled = cudaDeviceEnablePeerAccess(dst, 0);
  if (enabled == cudaErrorPeerAccessAlreadyEnabled) {
    cudaGetLastError();  // not an error here (and not sticky): clear it
  } else {
    EPCOMM_CUDA_CHECK(enabled);
  }
  Stream stream;
  Event start(true), stop(true);
  const auto copy = [&] {
    EPCOMM_CUDA_CHECK(cudaMemcpyPeerAsync(to.get(), dst, from.get(), src, from.bytes(), stream.get()));
  };
  copy();
  start.record(stream.get());
  for (int i = 0; i < kPeerCopiesTimed; ++i) copy();
  stop.record(stream.get());
  EPCOMM_CUDA_CHECK(cudaEventSynchronize(stop.get()));
  float ms = 0;
  EPCOMM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  if (enabled == cudaSuccess) EPCOMM_CUDA_CHECK(cudaDeviceDisablePeerAccess(dst));
  return static_cast<double>(from.bytes()) * kPeerCopiesTimed / (static_cast<double>(ms) * 1e-3) / 1e9;
}

}  // namespace

CudaFacts probe_cuda(bool require_gpu) {
  CudaFacts f;
  static_cast<GpuPresence&>(f) = probe_gpu_presence();
  f.require_gpu = require_gpu;
  if (cudaDriverGetVersion(&f.driver_version) != cudaSuccess) f.driver_version = 0;
  if (cudaRuntimeGetVersion(&f.runtime_version) != cudaSuccess) f.runtime_version = 0;
  cudaGetLastError();
  return f;
}

std::vector<GpuFacts> probe_gpus(int num_gpus) {
  std::vector<GpuFacts> gpus;
  for (int d = 0; d < num_gpus; ++d) {
    cudaDeviceProp prop{};
    EPCOMM_CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
    gpus.push_back({d, prop.name, prop.major, prop.minor, static_cast<std::int64_t>(prop.totalGlobalMem),
                    prop.multiProcessorCount, 0});
    EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&gpus.back().compute_mode, cudaDevAttrComputeMode, d));
  }
  return gpus;
}

PeerFacts probe_peers(int num_gpus, double min_gbps) {
  PeerFacts f;
  f.num_gpus = num_gpus;
  f.min_gbps = min_gbps;
  f.copy_bytes = kPeerCopyBytes;
  if (num_gpus < 2) return f;
  const auto links = cuda_links(num_gpus, f.topology_note);
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;  // one per GPU: source and destination in turn
  std::string allocation_error;
  for (int d = 0; d < num_gpus && allocation_error.empty(); ++d) {
    try {
      EPCOMM_CUDA_CHECK(cudaSetDevice(d));
      buffers.push_back(std::make_unique<DeviceBuffer>(static_cast<std::size_t>(kPeerCopyBytes)));
    } catch (const Error& e) {
      allocation_error = "allocating " + std::to_string(kPeerCopyBytes >> 20) + " MiB on GPU " +
                         std::to_string(d) + ": " + e.message();
    }
  }
  for (int i = 0; i < num_gpus; ++i) {
    for (int j = 0; j < num_gpus; ++j) {
      if (i == j) continue;
      PeerPair p;
      p.src = i;
      p.dst = j;
      int value = 0;
      p.can_access = cudaDeviceCanAccessPeer(&value, i, j) == cudaSuccess && value != 0;
      p.native_atomics =
          cudaDeviceGetP2PAttribute(&value, cudaDevP2PAttrNativeAtomicSupported, i, j) == cudaSuccess &&
          value != 0;
      cudaGetLastError();
      if (!links.empty()) p.link = links[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)];
      if (!allocation_error.empty()) {
        p.error = allocation_error;
      } else if (p.can_access) {
        try {
          p.gbps = measure_peer_copy(i, j, *buffers[static_cast<std::size_t>(i)],
                                     *buffers[static_cast<std::size_t>(j)]);
        } catch (const Error& e) {
          p.error = e.message();
        }
      }
      f.pairs.push_back(p);
    }
  }
  return f;
}

}  // namespace epcomm::doctor
