// epcomm-doctor's decisions on the launch environment, NVSHMEM and the worker runs
// (tools/doctor/checks.hpp), one case per failure kind, from made-up facts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu/test_doctor_common.hpp"
#include "doctor/checks.hpp"

namespace epcomm::doctor {
namespace {

using testing::contains;

// ---- launch environment ----------------------------------------------------------------------------

Environment launched(int rank, int world, int local_rank, int local_world) {
  return environment_of({"MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500", "RANK=" + std::to_string(rank),
                         "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(local_rank),
                         "LOCAL_WORLD_SIZE=" + std::to_string(local_world), "NCCL_NVLS_ENABLE=0",
                         "NVSHMEM_DISABLE_NVLS=1", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1", "PATH=/bin"});
}

TEST(DoctorLaunch, ConsistentOrAbsent) {
  const Environment env = environment_of({"PATH=/bin", "NOEQUALS", "EMPTY="});
  EXPECT_EQ(env.size(), 2u);
  EXPECT_EQ(env.at("EMPTY"), "");
  const CheckResult alone = decide_launch_env(env, 8);
  EXPECT_SEEN(alone, Status::kOk, "not started as a rank");
  EXPECT_SEEN(alone, Status::kOk,
              "advice: set NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1");
  const CheckResult rank = decide_launch_env(launched(9, 16, 1, 8), 8);
  EXPECT_SEEN(rank, Status::kOk,
              "rank 9 of 16 (local rank 1), rendezvous 127.0.0.1:29500; NVLink multicast off");
}

TEST(DoctorLaunch, EachInconsistency) {
  Environment missing = launched(0, 2, 0, 2);
  missing.erase("MASTER_PORT");
  EXPECT_SEEN(decide_launch_env(missing, 2), Status::kFail, "MASTER_PORT is unset while other rendezvous");
  EXPECT_SEEN(decide_launch_env(launched(2, 2, 0, 2), 2), Status::kFail, "RANK=2 is not below WORLD_SIZE=2");
  EXPECT_SEEN(decide_launch_env(launched(1, 4, 2, 2), 2), Status::kFail,
              "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2");
  EXPECT_SEEN(decide_launch_env(launched(1, 6, 1, 4), 8), Status::kFail,
              "WORLD_SIZE=6 is not a multiple of LOCAL_WORLD_SIZE=4");
  EXPECT_SEEN(decide_launch_env(launched(1, 8, 1, 8), 4), Status::kFail,
              "LOCAL_WORLD_SIZE=8 ranks on a host with 4 GPUs");
  EXPECT_SEEN(decide_launch_env(launched(1, 8, 5, 8), 4), Status::kFail,
              "LOCAL_RANK=5 but this host has 4 GPUs");
  EXPECT_EQ(decide_launch_env(launched(1, 8, 5, 8), -1).status, Status::kOk);  // GPUs unknown: not judged
}

TEST(DoctorLaunch, MalformedVariablesAndMulticast) {
  Environment bad = launched(0, 2, 0, 2);
  bad["EPCOMM_TIMEOUT_MS"] = "soon";
  bad["EPCOMM_LOG"] = "loud";
  const CheckResult malformed = decide_launch_env(bad, 2);
  EXPECT_SEEN(malformed, Status::kFail, "EPCOMM_TIMEOUT_MS='soon'");
  EXPECT_SEEN(malformed, Status::kFail, "EPCOMM_LOG='loud'");
  Environment out_of_range = launched(0, 2, 0, 2);
  out_of_range["EPCOMM_BOOTSTRAP_TIMEOUT_MS"] = "0";
  EXPECT_SEEN(decide_launch_env(out_of_range, 2), Status::kFail,
              "EPCOMM_BOOTSTRAP_TIMEOUT_MS='0' is out of range");
  Environment bad_rank = launched(0, 2, 0, 2);
  bad_rank["RANK"] = "zero";
  const CheckResult rank = decide_launch_env(bad_rank, 2);
  EXPECT_SEEN(rank, Status::kFail, "RANK='zero'");
  EXPECT_FALSE(contains(rank.seen, "not below")) << rank.seen;  // no consistency check on a malformed value

  Environment nvls = launched(0, 2, 0, 2);
  nvls["NCCL_NVLS_ENABLE"] = "1";
  EXPECT_SEEN(decide_launch_env(nvls, 2), Status::kFail, "NCCL_NVLS_ENABLE=1 lets NVLink multicast be used");
  Environment nvshmem = launched(0, 2, 0, 2);
  nvshmem["NVSHMEM_DISABLE_NVLS"] = "0";
  EXPECT_SEEN(decide_launch_env(nvshmem, 2), Status::kFail, "NVSHMEM_DISABLE_NVLS=1 (epcomm-run sets it)");

  Environment typo = launched(0, 2, 0, 2);
  typo["EPCOMM_TIMEOUT"] = "5000";
  typo["EPCOMM_REQUIRE_GPU"] = "1";
  const CheckResult note = decide_launch_env(typo, 2);
  EXPECT_SEEN(note, Status::kOk, "not read by epcomm (a typo?): EPCOMM_TIMEOUT");
  EXPECT_FALSE(contains(note.seen, "EPCOMM_REQUIRE_GPU")) << note.seen;
}

// ---- NVSHMEM --------------------------------------------------------------------------------------

NvshmemFacts found(const std::string& version) {
  NvshmemFacts f;
  f.home = "/opt/nvshmem";
  f.found_by = "NVSHMEM_HOME";
  f.host_library = f.device_library = true;
  f.version = version;
  f.built_with_nvshmem = true;
  return f;
}

TEST(DoctorNvshmem, EachCase) {
  EXPECT_EQ(parse_nvshmem_version(
                "#define NVSHMEM_VENDOR_MAJOR_VERSION 3\n#define NVSHMEM_VENDOR_MINOR_VERSION 4\n"
                "#define  NVSHMEM_VENDOR_PATCH_VERSION\t5\n#define NVSHMEM_VENDOR_PACKAGE_VERSION 0\n"),
            "3.4.5");
  EXPECT_EQ(parse_nvshmem_version("#define NVSHMEM_VENDOR_MAJOR_VERSION 3\n"), "");

  NvshmemFacts nowhere;
  nowhere.looked = {"NVSHMEM_HOME (unset)", "python3 nvidia.nvshmem (No module named 'nvidia')"};
  const CheckResult skip = decide_nvshmem(nowhere);
  EXPECT_SEEN(skip, Status::kSkip, "not found (optional");
  EXPECT_SEEN(skip, Status::kSkip,
              "looked at: NVSHMEM_HOME (unset); python3 nvidia.nvshmem (No module named 'nvidia')");
  EXPECT_SEEN(skip, Status::kSkip, "-DEPCOMM_WITH_NVSHMEM=ON");

  EXPECT_SEEN(decide_nvshmem(found("3.4.5")), Status::kOk,
              "3.4.5 at /opt/nvshmem (from NVSHMEM_HOME), libnvshmem_host.so.3 loads");
  NvshmemFacts no_host = found("3.4.5");
  no_host.host_library = false;
  EXPECT_SEEN(decide_nvshmem(no_host), Status::kFail, "has no lib/libnvshmem_host.so.3");
  EXPECT_SEEN(decide_nvshmem(found("2.11.0")), Status::kFail, "holds NVSHMEM 2.11.0; epcomm needs 3.x");
  NvshmemFacts broken = found("3.4.5");
  broken.load_error = "libcudart.so.12: cannot open shared object file";
  EXPECT_SEEN(decide_nvshmem(broken), Status::kFail, "does not load: libcudart.so.12");
  NvshmemFacts runtime_only = found("");
  runtime_only.device_library = false;
  EXPECT_SEEN(decide_nvshmem(runtime_only), Status::kOk, "version unknown");
  EXPECT_SEEN(decide_nvshmem(runtime_only), Status::kOk, "enough to run, not to build");
}

// ---- worker runs ----------------------------------------------------------------------------------

launcher::LocalRun two_ranks(const std::string& out0, const std::string& out1, int code0 = 0, int code1 = 0) {
  launcher::LocalRun run;
  run.output = {out0, out1};
  run.in_reap_order = {{0, false, code0, false, 1.0}, {1, false, code1, false, 1.1}};
  run.exit_code = launcher::aggregate_exit_code(run.in_reap_order);
  return run;
}
std::string line(std::string_view phase, Status status, std::string_view detail) {
  return worker_line(phase, status, detail) + "\n";
}

TEST(DoctorWorkers, EveryRankMustSayOk) {
  const std::string ht_ok = line("ht", Status::kOk, "2 ranks x 128 tokens: match");
  const std::string ll_ok = line("ll", Status::kOk, "3 round trips match");
  const auto all_ok = two_ranks("noise\n" + ht_ok + ll_ok, ht_ok + ll_ok);
  EXPECT_SEEN(decide_worker_phase(all_ok, "ht", "dispatch/combine", false), Status::kOk,
              "2 ranks x 128 tokens: match (every rank)");
  EXPECT_SEEN(decide_worker_phase(all_ok, "ll", "low-latency", true), Status::kOk, "3 round trips match");

  const auto one_failed =
      two_ranks(ht_ok + line("ll", Status::kSkip, "not run: the high-throughput phase failed"),
                line("ht", Status::kFail, "dispatch recv_x (bytes): 8 of 4096 differ") +
                    line("ll", Status::kSkip, "not run: the high-throughput phase failed"),
                1, 1);
  EXPECT_SEEN(decide_worker_phase(one_failed, "ht", "dispatch/combine", false), Status::kFail,
              "rank 1: dispatch recv_x (bytes): 8 of 4096 differ");
  EXPECT_SEEN(decide_worker_phase(one_failed, "ll", "low-latency", true), Status::kSkip, "not run");

  // A low-latency failure does not make the high-throughput verdict fail.
  const auto ll_failed =
      two_ranks(ht_ok + line("ll", Status::kFail, "round 3 of 3: combine: bad"), ht_ok + ll_ok, 1, 0);
  EXPECT_EQ(decide_worker_phase(ll_failed, "ht", "dispatch/combine", false).status, Status::kOk);
  EXPECT_SEEN(decide_worker_phase(ll_failed, "ll", "low-latency", true), Status::kFail,
              "rank 0: round 3 of 3");
}

TEST(DoctorWorkers, SilentCrashedOrGarbled) {
  const std::string ht_ok = line("ht", Status::kOk, "match");
  launcher::LocalRun crashed = two_ranks(ht_ok, "[epcomm rank 1] error: about to die\n");
  crashed.in_reap_order = {{1, true, 6, false, 2.5}, {0, true, 15, true, 2.6}};
  const CheckResult silent = decide_worker_phase(crashed, "ht", "dispatch/combine", false);
  EXPECT_SEEN(silent, Status::kFail, "rank 1 reported nothing; rank 1 failed first: was killed by signal 6");
  EXPECT_SEEN(silent, Status::kFail, "stopped by the launcher: rank 0");
  EXPECT_SEEN(silent, Status::kFail, "its last line: [epcomm rank 1] error: about to die");

  launcher::LocalRun timed_out = two_ranks(ht_ok, "");
  timed_out.timed_out = true;
  EXPECT_SEEN(decide_worker_phase(timed_out, "ht", "dispatch/combine", false), Status::kFail,
              "(the run timed out)");

  // The tag must start a line: a mention inside another line does not count.
  EXPECT_EQ(decide_worker_phase(two_ranks(ht_ok, "echo @doctor ht ok\n"), "ht", "x", false).status,
            Status::kFail);
  EXPECT_SEEN(decide_worker_phase(two_ranks(ht_ok, "@doctor ht maybe so\n"), "ht", "x", false), Status::kFail,
              "rank 1: said 'maybe so'");

  // Ok lines, then a crash on the way out: a failure of the run's last phase only.
  const auto exit_crash = two_ranks(ht_ok, ht_ok, 0, 134);
  EXPECT_EQ(decide_worker_phase(exit_crash, "ht", "dispatch/combine", false).status, Status::kOk);
  EXPECT_SEEN(decide_worker_phase(exit_crash, "ht", "dispatch/combine", true), Status::kFail,
              "every rank reported ok, but then rank 1 failed first: exited with code 134");
  EXPECT_EQ(decide_worker_phase(launcher::LocalRun{}, "ht", "x", true).status, Status::kFail);
}

}  // namespace
}  // namespace epcomm::doctor
