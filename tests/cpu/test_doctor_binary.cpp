// The built epcomm-doctor (EPCOMM_DOCTOR_BINARY, set by tools/doctor/CMakeLists.txt) with no GPU
// in sight: CUDA_VISIBLE_DEVICES=-1 hides any GPU, so this runs alike on CI and on a GPU machine. It
// must print the no-GPU line, one line per check in order, and exit with its documented code; its
// hidden worker mode, run as ranks through the launcher core, must report in words, not crash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "bootstrap/launcher.hpp"
#include "doctor/checks.hpp"

#ifndef EPCOMM_DOCTOR_BINARY
#error "EPCOMM_DOCTOR_BINARY (the path of the built epcomm-doctor) must be defined"
#endif

namespace epcomm::doctor {
namespace {

struct Ran {
  int exit_code = -1;
  std::string output;  // stdout and stderr
  std::vector<std::string> lines;
};

// Runs the doctor with a clean environment plus `env` ("A=1 B=2").
Ran run_doctor(const std::string& env, const std::string& args = "") {
  const char* path = std::getenv("PATH");
  const std::string command = "env -i PATH='" + std::string(path ? path : "/usr/bin:/bin") +
                              "' CUDA_VISIBLE_DEVICES=-1 " + env + " " + EPCOMM_DOCTOR_BINARY + " " + args +
                              " 2>&1";
  Ran ran;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return ran;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) ran.output.append(buf, n);
  const int status = ::pclose(pipe);
  ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::istringstream in(ran.output);
  for (std::string line; std::getline(in, line);) ran.lines.push_back(line);
  return ran;
}

const std::vector<std::string> kChecksInOrder = {
    "cuda", "gpus", "peers", "ipc", "nvshmem", "launch", "dispatch/combine", "low-latency"};

TEST(DoctorBinary, NoGpuSaysSoAndExits77) {
  const Ran ran = run_doctor("");
  EXPECT_EQ(ran.exit_code, kExitNoGpu) << ran.output;
  ASSERT_EQ(ran.lines.size(), kChecksInOrder.size()) << ran.output;
  const std::regex format("^(ok|FAIL|skip) +([a-z/-]+): .+$");
  for (std::size_t i = 0; i < ran.lines.size(); ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(ran.lines[i], m, format)) << ran.lines[i];
    EXPECT_EQ(m[2], kChecksInOrder[i]) << ran.lines[i];
  }
  EXPECT_EQ(ran.lines[0].rfind("skip  cuda: no GPU (", 0), 0u) << ran.lines[0];
  for (std::size_t i : {1, 2, 3, 6, 7}) EXPECT_EQ(ran.lines[i].rfind("skip  ", 0), 0u) << ran.lines[i];
  EXPECT_NE(ran.lines[5].find("advice: set NCCL_NVLS_ENABLE=0"), std::string::npos) << ran.lines[5];
}

TEST(DoctorBinary, RequiredGpuAndBadEnvironmentFail) {
  const Ran required = run_doctor("EPCOMM_REQUIRE_GPU=1");
  EXPECT_EQ(required.exit_code, kExitFailed) << required.output;
  ASSERT_FALSE(required.lines.empty());
  EXPECT_EQ(required.lines[0].rfind("FAIL  cuda: no GPU (", 0), 0u) << required.lines[0];
  EXPECT_NE(required.lines[0].find("EPCOMM_REQUIRE_GPU=1"), std::string::npos);

  const Ran bad = run_doctor("EPCOMM_TIMEOUT_MS=soon NCCL_NVLS_ENABLE=1 RANK=0");
  EXPECT_EQ(bad.exit_code, kExitFailed) << bad.output;
  ASSERT_EQ(bad.lines.size(), kChecksInOrder.size()) << bad.output;
  EXPECT_EQ(bad.lines[5].rfind("FAIL  launch: ", 0), 0u) << bad.lines[5];
  EXPECT_NE(bad.lines[5].find("EPCOMM_TIMEOUT_MS='soon'"), std::string::npos) << bad.lines[5];
  EXPECT_NE(bad.lines[5].find("NCCL_NVLS_ENABLE=1 lets NVLink multicast be used"), std::string::npos);

  const Ran good = run_doctor(
      "NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 "
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 RANK=1 WORLD_SIZE=2");
  ASSERT_EQ(good.lines.size(), kChecksInOrder.size()) << good.output;
  EXPECT_EQ(good.lines[5], "ok    launch: rank 1 of 2, rendezvous 127.0.0.1:29500; NVLink multicast off");
}

TEST(DoctorBinary, UsageAndHelp) {
  const Ran help = run_doctor("", "--help");
  EXPECT_EQ(help.exit_code, kExitOk);
  EXPECT_NE(help.output.find("usage: epcomm-doctor"), std::string::npos);
  EXPECT_NE(help.output.find("77 no GPU here"), std::string::npos);
  const Ran bad = run_doctor("", "--min-peer-gbps fast");
  EXPECT_EQ(bad.exit_code, kExitUsage);
  EXPECT_NE(bad.output.find("--min-peer-gbps expects a number >= 0, got 'fast'"), std::string::npos)
      << bad.output;
  EXPECT_EQ(run_doctor("", "--bogus").exit_code, kExitUsage);
  EXPECT_EQ(run_doctor("EPCOMM_REQUIRE_GPU=perhaps").exit_code, kExitUsage);
}

// The end-to-end run's plumbing without a GPU: two workers started by the launcher core, each
// failing to find a GPU, report it as lines the parent's decision reads.
TEST(DoctorBinary, WorkersReportInWords) {
  launcher::LocalRunOptions o;
  o.command = {EPCOMM_DOCTOR_BINARY, "--worker"};
  o.num_ranks = 2;
  o.parent_environment = {"CUDA_VISIBLE_DEVICES=-1", "PATH=/usr/bin:/bin"};
  o.timeout = std::chrono::seconds(60);
  const launcher::LocalRun run = launcher::run_local(o);
  EXPECT_EQ(run.exit_code, 1);
  const CheckResult ht = decide_worker_phase(run, "ht", "dispatch/combine", false);
  EXPECT_EQ(ht.status, Status::kFail);
  // Whichever rank failed first said why (the other may be stopped before it could).
  EXPECT_TRUE(std::regex_search(ht.seen, std::regex("^rank [01]: setting up the rank: "))) << ht.seen;
  EXPECT_NE(ht.seen.find("cudaGetDeviceCount"), std::string::npos) << ht.seen;
  EXPECT_EQ(decide_worker_phase(run, "ll", "low-latency", true).status, Status::kFail);

  // The IPC child likewise.
  launcher::LocalRunOptions ipc = o;
  ipc.command = {EPCOMM_DOCTOR_BINARY, "--ipc-child", "00"};
  ipc.num_ranks = 1;
  const CheckResult child = decide_worker_phase(launcher::run_local(ipc), "ipc", "ipc", true);
  EXPECT_EQ(child.status, Status::kFail);
  EXPECT_NE(child.seen.find("cudaGetDeviceCount"), std::string::npos) << child.seen;
}

}  // namespace
}  // namespace epcomm::doctor
