// epcomm-doctor's decisions on CUDA, GPUs, peers and IPC (tools/doctor/checks.hpp), one case per
// failure kind, from made-up facts: no GPU is needed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu/test_doctor_common.hpp"
#include "doctor/checks.hpp"

namespace epcomm::doctor {
namespace {

using testing::contains;

TEST(DoctorFormat, LinesAndExitCodes) {
  EXPECT_EQ(format_line({Status::kOk, "cuda", "fine"}), "ok    cuda: fine");
  EXPECT_EQ(format_line({Status::kFail, "gpus", "bad"}), "FAIL  gpus: bad");
  EXPECT_EQ(format_line({Status::kSkip, "peers", "one"}), "skip  peers: one");
  const CheckResult ok{Status::kOk, "a", ""}, skip{Status::kSkip, "b", ""}, fail{Status::kFail, "c", ""};
  EXPECT_EQ(exit_code({ok, skip}, false), kExitOk);
  EXPECT_EQ(exit_code({ok, skip}, true), kExitNoGpu);
  EXPECT_EQ(exit_code({ok, fail, skip}, true), kExitFailed);  // a failure beats "no GPU"
  EXPECT_EQ(exit_code({ok, fail}, false), kExitFailed);
}

// ---- CUDA -----------------------------------------------------------------------------------------

CudaFacts cuda_facts(cudaError_t error, int gpus, bool driver = true) {
  CudaFacts f;
  f.count_error = error;
  f.error_text = "text of the error";
  f.num_gpus = gpus;
  f.driver_installed = driver;
  f.driver_version = driver ? 13000 : 0;
  f.runtime_version = 13000;
  return f;
}

TEST(DoctorCuda, NoGpuIsASkipUnlessRequired) {
  EXPECT_EQ(cuda_version_text(13000), "13.0");
  EXPECT_EQ(cuda_version_text(12080), "12.8");
  EXPECT_EQ(cuda_version_text(0), "none");
  // No driver at all (this CI machine): the runtime says cudaErrorInsufficientDriver.
  CudaFacts none = cuda_facts(cudaErrorInsufficientDriver, 0, false);
  EXPECT_TRUE(no_gpu(none));
  EXPECT_SEEN(decide_cuda(none), Status::kSkip, "no GPU (no CUDA driver installed");
  EXPECT_SEEN(decide_cuda(none), Status::kSkip, "exit 77");
  none.require_gpu = true;
  EXPECT_SEEN(decide_cuda(none), Status::kFail, "EPCOMM_REQUIRE_GPU=1");
  EXPECT_TRUE(no_gpu(cuda_facts(cudaErrorNoDevice, 0)));
  EXPECT_SEEN(decide_cuda(cuda_facts(cudaErrorNoDevice, 0)), Status::kSkip, "the driver sees none");
  EXPECT_TRUE(no_gpu(cuda_facts(cudaSuccess, 0)));
}

TEST(DoctorCuda, DriverProblemsFail) {
  // A driver is installed but too old for the runtime: the same error, now a failure.
  CudaFacts old = cuda_facts(cudaErrorInsufficientDriver, 0, true);
  old.driver_version = 12020;
  EXPECT_FALSE(no_gpu(old));
  EXPECT_SEEN(decide_cuda(old), Status::kFail, "older than the runtime: driver supports CUDA 12.2");
  EXPECT_SEEN(decide_cuda(old), Status::kFail, "install a driver for CUDA 13.0");
  CudaFacts older_but_counted = cuda_facts(cudaSuccess, 2);
  older_but_counted.driver_version = 12080;
  EXPECT_SEEN(decide_cuda(older_but_counted), Status::kFail, "older than the runtime");
  EXPECT_SEEN(decide_cuda(cuda_facts(cudaErrorUnknown, 0)), Status::kFail,
              "cudaGetDeviceCount failed: text of the error");
  EXPECT_SEEN(decide_cuda(cuda_facts(cudaSuccess, 8)), Status::kOk,
              "driver supports CUDA 13.0, CUDA runtime 13.0, 8 GPUs");
}

// ---- GPUs -----------------------------------------------------------------------------------------

GpuFacts gpu(int index, const std::string& name, int major, int minor) {
  return {index, name, major, minor, std::int64_t{141} << 30, 132, cudaComputeModeDefault};
}

TEST(DoctorGpus, ArchitectureRules) {
  EXPECT_TRUE(arch_runs_on("90a", 9, 0));
  EXPECT_FALSE(arch_runs_on("90a", 10, 0));  // arch-specific code is not forward compatible
  EXPECT_FALSE(arch_runs_on("90a", 8, 0));
  EXPECT_TRUE(arch_runs_on("100a", 10, 0));
  EXPECT_FALSE(arch_runs_on("100a", 10, 3));
  EXPECT_TRUE(arch_runs_on("100f", 10, 3));  // family: same major
  EXPECT_FALSE(arch_runs_on("100f", 12, 0));
  EXPECT_TRUE(arch_runs_on("90", 12, 0));  // PTX: compiled at load for later GPUs
  EXPECT_TRUE(arch_runs_on("90-virtual", 10, 0));
  EXPECT_TRUE(arch_runs_on("80-real", 8, 6));
  EXPECT_FALSE(arch_runs_on("80-real", 9, 0));
  EXPECT_FALSE(arch_runs_on("sm_90", 9, 0));  // not CMake's spelling: never guessed
  EXPECT_FALSE(arch_runs_on("", 9, 0));
}

TEST(DoctorGpus, WrongComputeCapabilityOrModeFails) {
  EXPECT_SEEN(decide_gpus({gpu(0, "NVIDIA H200", 9, 0), gpu(1, "NVIDIA H200", 9, 0)}, "90a"), Status::kOk,
              "2 x NVIDIA H200 (compute capability 9.0, 132 SMs, 141 GiB); device code built for 90a runs on "
              "every one");
  const CheckResult a100 = decide_gpus({gpu(0, "NVIDIA H100", 9, 0), gpu(1, "NVIDIA A100", 8, 0)}, "90a");
  EXPECT_SEEN(a100, Status::kFail,
              "GPU 1 (NVIDIA A100, compute capability 8.0) cannot run epcomm's device code");
  EXPECT_FALSE(contains(a100.seen, "GPU 0"));
  EXPECT_SEEN(decide_gpus({gpu(0, "NVIDIA B200", 10, 0)}, "90a"), Status::kFail, "built for 90a");
  EXPECT_SEEN(decide_gpus({gpu(0, "NVIDIA B200", 10, 0)}, "90a;100a"), Status::kOk, "1 x NVIDIA B200");
  GpuFacts prohibited = gpu(0, "NVIDIA H200", 9, 0);
  prohibited.compute_mode = cudaComputeModeProhibited;
  EXPECT_SEEN(decide_gpus({prohibited}, "90a"), Status::kFail, "compute mode Prohibited");
  GpuFacts exclusive = gpu(0, "NVIDIA H200", 9, 0);
  exclusive.compute_mode = cudaComputeModeExclusiveProcess;
  EXPECT_SEEN(decide_gpus({exclusive}, "90a"), Status::kOk, "compute mode Exclusive Process");
  EXPECT_SEEN(decide_gpus({gpu(0, "NVIDIA H200", 9, 0), gpu(1, "NVIDIA H100", 9, 0)}, "90a"), Status::kOk,
              "mixed: GPU 1 is NVIDIA H100");
  EXPECT_EQ(decide_gpus({}, "90a").status, Status::kFail);
}

// ---- peers ----------------------------------------------------------------------------------------

PeerFacts healthy_peers(int n, double gbps = 360) {
  PeerFacts f;
  f.num_gpus = n;
  f.copy_bytes = std::int64_t{64} << 20;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (i != j) f.pairs.push_back({i, j, true, true, "NV18", gbps + i + j, ""});
    }
  }
  return f;
}
PeerPair& pair_of(PeerFacts& f, int src, int dst) {
  for (PeerPair& p : f.pairs) {
    if (p.src == src && p.dst == dst) return p;
  }
  throw std::logic_error("no such pair");
}

TEST(DoctorPeers, HealthyAndSingleGpu) {
  EXPECT_SEEN(decide_peers(healthy_peers(1)), Status::kSkip, "one GPU");
  const CheckResult ok = decide_peers(healthy_peers(4));
  EXPECT_SEEN(ok, Status::kOk, "all 12 ordered pairs of 4 GPUs have peer access with native atomics");
  EXPECT_SEEN(ok, Status::kOk, "links: NV18 (nvidia-smi topo -m)");
  EXPECT_SEEN(ok, Status::kOk,
              "copies of 64 MiB one way: median 363 GB/s, max 365 GB/s, slowest GPU 0 -> GPU 1 361 GB/s");
  PeerFacts unknown = healthy_peers(2);
  for (PeerPair& p : unknown.pairs) p.link.clear();
  unknown.topology_note = "nvidia-smi topo -m did not run";
  EXPECT_SEEN(decide_peers(unknown), Status::kOk, "links: unknown (nvidia-smi topo -m did not run)");
}

TEST(DoctorPeers, EachFailureKind) {
  PeerFacts no_access = healthy_peers(4);
  pair_of(no_access, 2, 3).can_access = false;
  pair_of(no_access, 2, 3).gbps = -1;
  EXPECT_SEEN(decide_peers(no_access), Status::kFail, "GPU 2 -> GPU 3: no peer access");

  PeerFacts no_atomics = healthy_peers(2);
  pair_of(no_atomics, 1, 0).native_atomics = false;
  EXPECT_SEEN(decide_peers(no_atomics), Status::kFail, "GPU 1 -> GPU 0: no native atomics");

  PeerFacts pcie = healthy_peers(2, 25);
  for (PeerPair& p : pcie.pairs) p.link = "SYS";
  const CheckResult slow = decide_peers(pcie);
  EXPECT_SEEN(slow, Status::kFail, "GPU 0 -> GPU 1: 26 GB/s, below the minimum 100 GB/s over SYS");
  EXPECT_SEEN(slow, Status::kFail, "linked by SYS, not NVLink");

  PeerFacts degraded = healthy_peers(8);
  pair_of(degraded, 5, 2).gbps = 150;  // fine by the minimum, but far under its siblings
  const CheckResult bad_link = decide_peers(degraded);
  EXPECT_SEEN(bad_link, Status::kFail, "GPU 5 -> GPU 2: 150 GB/s, under half the median");
  EXPECT_FALSE(contains(bad_link.seen, "GPU 2 -> GPU 5")) << bad_link.seen;

  PeerFacts copy_error = healthy_peers(2);
  pair_of(copy_error, 0, 1).gbps = -1;
  pair_of(copy_error, 0, 1).error = "cudaMemcpyPeerAsync: an illegal memory access";
  EXPECT_SEEN(decide_peers(copy_error), Status::kFail,
              "GPU 0 -> GPU 1: the peer copy failed: cudaMemcpyPeerAsync");

  PeerFacts many = healthy_peers(4);
  for (PeerPair& p : many.pairs) p.native_atomics = false;
  EXPECT_SEEN(decide_peers(many), Status::kFail, "; and 6 more");
}

TEST(DoctorPeers, TopologyText) {
  // nvidia-smi topo -m of a 4-GPU machine with NICs and an underlined (terminal) header.
  const std::string text =
      "\t\x1b[4mGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m\n"
      "GPU0\t X \tNV18\tNV18\tSYS\tPIX\t0-47\t0\t\tN/A\n"
      "GPU1\tNV18\t X \tNV18\tSYS\tSYS\t0-47\t0\t\tN/A\n"
      "GPU2\tNV18\tNV18\t X \tNV18\tSYS\t48-95\t1\t\tN/A\n"
      "GPU3\tSYS\tSYS\tNV18\t X \tSYS\t48-95\t1\t\tN/A\n"
      "NIC0\tPIX\tSYS\tSYS\tSYS\t X \n"
      "\n"
      "Legend:\n"
      "  X    = Self\n"
      "  NV#  = Connection traversing a bonded set of # NVLinks\n";
  const auto m = parse_topo_matrix(text);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0], (std::vector<std::string>{"X", "NV18", "NV18", "SYS"}));
  EXPECT_EQ(m[3][2], "NV18");
  EXPECT_EQ(m[3][0], "SYS");
  EXPECT_TRUE(parse_topo_matrix("").empty());
  EXPECT_TRUE(parse_topo_matrix("No devices were found\n").empty());
  EXPECT_TRUE(parse_topo_matrix("\tGPU0\tGPU1\nGPU0\t X \n").empty());  // a cut-off matrix

  EXPECT_EQ(normalize_bus_id("00000000:1B:00.0"), "0:1b:00.0");
  EXPECT_EQ(normalize_bus_id("0000:1b:00.0"), "0:1b:00.0");
  EXPECT_EQ(normalize_bus_id("00000001:CA:00.0\n"), "1:ca:00.0");
  EXPECT_EQ(normalize_bus_id("garbage"), "");
  EXPECT_EQ(normalize_bus_id("zz:1b:00.0"), "");
}

// ---- IPC ------------------------------------------------------------------------------------------

launcher::LocalRun one_process(const std::string& output, int code) {
  launcher::LocalRun run;
  run.output = {output};
  run.in_reap_order = {{0, false, code, false, 0.5}};
  run.exit_code = code;
  return run;
}

TEST(DoctorIpc, HexRoundTrip) {
  const unsigned char bytes[4] = {0x00, 0x7f, 0xa5, 0xff};
  EXPECT_EQ(to_hex(bytes, 4), "007fa5ff");
  unsigned char back[4] = {};
  EXPECT_TRUE(from_hex("007FA5ff", back, 4));
  EXPECT_EQ(std::vector<unsigned char>(back, back + 4), std::vector<unsigned char>(bytes, bytes + 4));
  EXPECT_FALSE(from_hex("007fa5f", back, 4));     // too short
  EXPECT_FALSE(from_hex("007fa5fg", back, 4));    // not hex
  EXPECT_FALSE(from_hex("007fa5ff00", back, 4));  // too long
}

TEST(DoctorIpc, EachFailureKind) {
  IpcFacts ok;
  ok.num_gpus = 2;
  ok.child = one_process(worker_line("ipc", Status::kOk, "mapped") + "\n", 0);
  ok.written_back = {true, true};
  EXPECT_SEEN(decide_ipc(ok), Status::kOk,
              "a second process opened a buffer of each of the 2 GPUs from the next GPU");
  IpcFacts one = ok;
  one.num_gpus = 1;
  one.written_back = {true};
  EXPECT_SEEN(decide_ipc(one), Status::kOk,
              "a second process opened a buffer of the GPU (cudaIpcOpenMemHandle)");

  IpcFacts parent = ok;
  parent.parent_error = "preparing the buffers to share: cudaMalloc: out of memory";
  EXPECT_SEEN(decide_ipc(parent), Status::kFail, "preparing the buffers to share");

  IpcFacts open_failed = ok;
  open_failed.child = one_process(
      worker_line("ipc", Status::kFail, "cudaIpcOpenMemHandle(...) failed: invalid device context") + "\n",
      1);
  EXPECT_SEEN(decide_ipc(open_failed), Status::kFail,
              "cudaIpcOpenMemHandle(...) failed: invalid device context");
  EXPECT_SEEN(decide_ipc(open_failed), Status::kFail, "--ipc=host");

  IpcFacts crashed = ok;
  crashed.child.output = {"something printed\n"};
  crashed.child.in_reap_order = {{0, true, 11, false, 0.2}};
  EXPECT_SEEN(decide_ipc(crashed), Status::kFail,
              "rank 0 reported nothing; rank 0 failed first: was killed by signal 11");
  EXPECT_SEEN(decide_ipc(crashed), Status::kFail, "its last line: something printed");

  IpcFacts lost_write = ok;
  lost_write.written_back = {true, false};
  EXPECT_SEEN(decide_ipc(lost_write), Status::kFail, "mapping of GPU 1's buffer did not arrive");
}

}  // namespace
}  // namespace epcomm::doctor
