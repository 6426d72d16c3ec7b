// epcomm-bench's command line and start decision (tools/bench/cli.hpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/cli.hpp"
#include "epcomm/error.hpp"
#include "expect_error.hpp"

namespace epcomm::bench {
namespace {

Options parse(std::vector<const char*> args) {
  args.insert(args.begin(), "epcomm-bench");
  return parse_args(static_cast<int>(args.size()), args.data());
}

TEST(BenchCli, DefaultsFollowTheProtocol) {
  const Options o = parse({});
  EXPECT_EQ(o.workloads, std::vector<std::string>{"ht-dsv3"});
  EXPECT_EQ(o.warmup, 10);
  EXPECT_EQ(o.iters, 50);
  EXPECT_TRUE(o.check);
  EXPECT_FALSE(o.min_efficiency.has_value());
  EXPECT_TRUE(o.json_path.empty());
}

TEST(BenchCli, Flags) {
  const Options o = parse({"--workload", "all", "--warmup=20", "--iters", "100", "--json",
                           "r-{workload}.json", "--csv=r.csv", "--no-check", "--sms", "8,16,24",
                           "--min-efficiency", "0.75", "--ceiling-mib", "1024", "--ce-chunks", "2,4,8"});
  EXPECT_EQ(o.workloads, (std::vector<std::string>{"ht-dsv3", "ht-skew", "ll-dsv3", "ll-small"}));
  EXPECT_EQ(o.warmup, 20);
  EXPECT_EQ(o.iters, 100);
  EXPECT_EQ(o.json_path, "r-{workload}.json");
  EXPECT_EQ(o.csv_path, "r.csv");
  EXPECT_FALSE(o.check);
  EXPECT_EQ(o.sms, (std::vector<int>{8, 16, 24}));
  EXPECT_DOUBLE_EQ(*o.min_efficiency, 0.75);
  EXPECT_EQ(o.ceiling_mib, 1024u);
  EXPECT_EQ(o.ce_chunks, (std::vector<int>{2, 4, 8}));
  EXPECT_EQ(parse({}).ce_chunks, std::vector<int>{4});
  EXPECT_EQ(parse({"--workload", "ll-small,ht-skew"}).workloads,
            (std::vector<std::string>{"ll-small", "ht-skew"}));
  EXPECT_FALSE(o.shared_gpu_timing);
  EXPECT_TRUE(parse({"--shared-gpu-timing"}).shared_gpu_timing);
  EXPECT_FALSE(o.telemetry);
  EXPECT_TRUE(parse({"--telemetry"}).telemetry);
  EXPECT_EQ(parse({}).preamble_hold_us, 200);
  EXPECT_EQ(parse({"--preamble-hold-us", "0"}).preamble_hold_us, 0);
  EXPECT_EQ(parse({"--preamble-hold-us=1000"}).preamble_hold_us, 1000);
  for (const char* bad : {"-1", "100001", "soon", ""})
    test::expect_arg_error([&] { parse({"--preamble-hold-us", bad}); }, "--preamble-hold-us");
}

std::string message_of(std::vector<const char*> args) {
  try {
    parse(std::move(args));
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    return e.message();
  }
  return "no error";
}

bool mentions(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(BenchCli, BadArgumentsNameTheFlag) {
  EXPECT_NE(message_of({"--iters", "0"}).find("--iters"), std::string::npos);
  EXPECT_NE(message_of({"--iters", "12x"}).find("12x"), std::string::npos);
  EXPECT_NE(message_of({"--warmup"}).find("expected a value"), std::string::npos);
  EXPECT_NE(message_of({"--workload", "ht-big"}).find("ht-dsv3"), std::string::npos);
  EXPECT_NE(message_of({"--sms", "8,,16"}).find("--sms"), std::string::npos);
  EXPECT_NE(message_of({"--ce-chunks", "9"}).find("1..8"), std::string::npos);
  EXPECT_NE(message_of({"--ce-chunks", ""}).find("chunk counts"), std::string::npos);
  EXPECT_NE(message_of({"--min-efficiency", "-1"}).find("--min-efficiency"), std::string::npos);
  EXPECT_NE(message_of({"--no-check=1"}).find("takes no value"), std::string::npos);
  EXPECT_NE(message_of({"--shared-gpu-timing=yes"}).find("takes no value"), std::string::npos);
  EXPECT_NE(message_of({"--telemetry=1"}).find("--telemetry"), std::string::npos);
  EXPECT_NE(message_of({"--frobnicate"}).find("--frobnicate"), std::string::npos);
}

// Issue 19 item 7: the loose flags.
TEST(BenchCli, MinEfficiencyIsAFractionInZeroToOne) {
  EXPECT_TRUE(mentions(message_of({"--min-efficiency", "2"}), "(0, 1]"));
  EXPECT_TRUE(mentions(message_of({"--min-efficiency", "0"}), "(0, 1]"));
  EXPECT_TRUE(mentions(message_of({"--min-efficiency", "1.0001"}), "given '1.0001'"));
  EXPECT_DOUBLE_EQ(*parse({"--min-efficiency", "1"}).min_efficiency, 1.0);
  EXPECT_DOUBLE_EQ(*parse({"--min-efficiency=0.01"}).min_efficiency, 0.01);
}

TEST(BenchCli, LimitsAreStatedAndEnforced) {
  EXPECT_TRUE(mentions(message_of({"--iters", "99999999999"}), "1..100000"));
  EXPECT_TRUE(mentions(message_of({"--iters", "100001"}), "1..100000"));
  EXPECT_EQ(parse({"--iters", "100000"}).iters, kMaxIters);
  EXPECT_TRUE(mentions(message_of({"--warmup", "100001"}), "0..100000"));
  EXPECT_TRUE(mentions(message_of({"--ceiling-mib", "16385"}), "1..16384"));
  EXPECT_TRUE(mentions(usage(), "1..100000"));
}

TEST(BenchCli, RepeatedFlagIsRefused) {
  EXPECT_TRUE(mentions(message_of({"--iters", "5", "--iters", "6"}), "--iters: given more than once"));
  EXPECT_TRUE(mentions(message_of({"--iters=5", "--iters", "6"}), "--iters: given more than once"));
  EXPECT_TRUE(mentions(message_of({"--no-check", "--no-check"}), "--no-check: given more than once"));
  EXPECT_TRUE(mentions(message_of({"-h", "--help"}), "given more than once"));
}

TEST(BenchCli, OutputFolderMustExist) {
  const std::string missing = "/nonexistent-epcomm-bench-folder/r.json";
  EXPECT_TRUE(mentions(message_of({"--json", missing.c_str()}), "/nonexistent-epcomm-bench-folder"));
  EXPECT_TRUE(mentions(message_of({"--csv", "/nonexistent-epcomm-bench-folder/r.csv"}), "--csv"));
  EXPECT_TRUE(mentions(message_of({"--json", "/nonexistent-{workload}/r.json"}), "/nonexistent-ht-dsv3"));
  const std::string here = std::filesystem::temp_directory_path().string() + "/r-{workload}.json";
  EXPECT_EQ(parse({"--json", here.c_str()}).json_path, here);
  EXPECT_EQ(parse({"--csv", "r.csv"}).csv_path, "r.csv");  // the current folder
}

TEST(BenchCli, UsageListsEveryFlagAndSaysMiB) {
  for (const char* flag :
       {"--workload", "--tokens", "--hidden", "--topk", "--experts", "--routing", "--mode", "--warmup",
        "--iters", "--json", "--csv", "--no-check", "--sms", "--ce-chunks", "--min-efficiency",
        "--ceiling-mib", "--telemetry", "--preamble-hold-us", "--help", "EPCOMM_REQUIRE_GPU"})
    EXPECT_TRUE(mentions(usage(), flag)) << flag;
  EXPECT_TRUE(mentions(usage(), "MiB per peer copy"));
  EXPECT_FALSE(mentions(usage(), "bytes per peer copy"));
}

// Issue 19 item 7: any shape.
TEST(BenchCli, CustomWorkload) {
  const Options o = parse({"--tokens", "4096", "--hidden", "7168", "--topk", "8", "--experts", "256"});
  ASSERT_TRUE(o.custom.has_value());
  EXPECT_TRUE(o.workloads.empty());  // only the custom shape runs
  EXPECT_EQ(o.custom->name, "custom-t4096-h7168-k8-e256-uniform");
  EXPECT_EQ(o.custom->mode, Mode::kHighThroughput);
  EXPECT_EQ(o.custom->routing, Routing::kRandom);
  EXPECT_EQ(run_names(o), std::vector<std::string>{"custom-t4096-h7168-k8-e256-uniform"});

  const Options ll = parse({"--tokens=128", "--hidden=4096", "--topk=6", "--experts=64", "--routing=skew",
                            "--mode=ll", "--workload", "ll-dsv3"});
  EXPECT_EQ(ll.custom->name, "custom-t128-h4096-k6-e64-skew-ll");
  EXPECT_EQ(ll.custom->mode, Mode::kLowLatency);
  EXPECT_EQ(ll.custom->routing, Routing::kSkewed);
  EXPECT_EQ(run_names(ll), (std::vector<std::string>{"ll-dsv3", "custom-t128-h4096-k6-e64-skew-ll"}));
  EXPECT_FALSE(parse({}).custom.has_value());
}

TEST(BenchCli, CustomWorkloadIsValidated) {
  const auto shape = [](const char* tokens, const char* hidden, const char* topk, const char* experts,
                        const char* mode = "ht") {
    return message_of(
        {"--tokens", tokens, "--hidden", hidden, "--topk", topk, "--experts", experts, "--mode", mode});
  };
  EXPECT_TRUE(mentions(message_of({"--tokens", "8"}), "missing: --hidden, --topk, --experts"));
  EXPECT_TRUE(mentions(message_of({"--mode", "ll"}), "missing: --tokens"));
  EXPECT_TRUE(mentions(shape("8", "200", "2", "8"), "--hidden: expected a multiple of 128"));
  EXPECT_TRUE(mentions(shape("8", "0", "2", "8"), "--hidden"));
  EXPECT_TRUE(mentions(shape("8", "256", "9", "8"), "--topk: expected 1..8"));
  EXPECT_TRUE(mentions(shape("8", "256", "17", "64", "ll"), "--topk: expected 1..16"));
  EXPECT_TRUE(mentions(shape("8", "16384", "2", "8", "ll"), "--hidden"));
  EXPECT_TRUE(mentions(shape("100000", "256", "2", "8", "ll"), "--tokens: expected 1..65536"));
  EXPECT_TRUE(mentions(shape("0", "256", "2", "8"), "--tokens"));
  EXPECT_TRUE(mentions(message_of({"--routing", "zipf"}), "uniform or skew"));
  EXPECT_TRUE(mentions(message_of({"--mode", "fast"}), "ht or ll"));
  EXPECT_TRUE(mentions(message_of({"--tokens", "8", "--tokens", "9"}), "--tokens: given more than once"));
}

// What epcomm::probe_gpu_presence would say on a machine with `num_gpus` GPUs, or with `error`.
GpuPresence machine(int num_gpus, cudaError_t error = cudaSuccess, bool driver = true) {
  GpuPresence p;
  p.count_error = error;
  p.error_name = error == cudaErrorInsufficientDriver ? "cudaErrorInsufficientDriver" : "cudaErrorOther";
  p.error_text = "text of the CUDA error";
  p.num_gpus = error == cudaSuccess ? num_gpus : 0;
  p.driver_installed = driver;
  return p;
}

// Issue 18 item 13: "skipped" only without a GPU; EPCOMM_REQUIRE_GPU turns a skip into a failure.
TEST(BenchStart, SkipsOnlyWithoutADevice) {
  BenchEnv env;
  StartDecision d = decide_start(machine(0, cudaErrorNoDevice), env, false);
  EXPECT_FALSE(d.run);
  EXPECT_FALSE(d.failure);
  EXPECT_EQ(d.exit_code, kExitOk);
  EXPECT_TRUE(mentions(d.message, "skipped: no GPU"));

  d = decide_start(machine(0), env, false);
  EXPECT_FALSE(d.run);
  EXPECT_EQ(d.exit_code, kExitOk);

  const GpuPresence mismatch = machine(0, cudaErrorInsufficientDriver, /*driver=*/true);
  d = decide_start(mismatch, env, false);
  EXPECT_FALSE(d.run);
  EXPECT_TRUE(d.failure);
  EXPECT_EQ(d.exit_code, kExitError);
  EXPECT_TRUE(mentions(d.message, "cudaErrorInsufficientDriver"));

  // The same error with no driver to load at all is a machine without a GPU: a skip.
  GpuPresence no_driver = mismatch;
  no_driver.driver_installed = false;
  d = decide_start(no_driver, env, false);
  EXPECT_FALSE(d.run);
  EXPECT_FALSE(d.failure);
  EXPECT_EQ(d.exit_code, kExitOk);
  EXPECT_TRUE(mentions(d.message, "skipped: no NVIDIA driver"));
  env.require_gpu = true;
  EXPECT_TRUE(decide_start(no_driver, env, false).failure);
  // Nor does --shared-gpu-timing make a GPU out of none.
  EXPECT_FALSE(decide_start(no_driver, env, true).run);
  env.require_gpu = false;

  d = decide_start(machine(1), env, false);
  EXPECT_TRUE(d.run);
  EXPECT_EQ(d.device, 0);
  env.local_world_size = 2;
  env.local_rank = 1;
  d = decide_start(machine(1), env, false);
  EXPECT_FALSE(d.run);
  EXPECT_EQ(d.exit_code, kExitOk);
  EXPECT_TRUE(mentions(d.message, "1 GPU(s) found, 2 needed"));
  EXPECT_TRUE(mentions(d.message, "--shared-gpu-timing"));
}

TEST(BenchStart, RequireGpuTurnsASkipIntoAFailure) {
  BenchEnv env;
  env.require_gpu = true;
  for (const GpuPresence& gpus : {machine(0, cudaErrorNoDevice), machine(0)}) {
    const StartDecision d = decide_start(gpus, env, false);
    EXPECT_FALSE(d.run);
    EXPECT_TRUE(d.failure);
    EXPECT_NE(d.exit_code, kExitOk);
    EXPECT_TRUE(mentions(d.message, "EPCOMM_REQUIRE_GPU"));
  }
  EXPECT_TRUE(decide_start(machine(1), env, false).run);
  env.local_world_size = 2;
  env.local_rank = 1;
  EXPECT_TRUE(decide_start(machine(1), env, false).failure);  // too few GPUs is a skip, so a failure
}

// Issue 23: ranks sharing a GPU are timed only when asked, on GPU LOCAL_RANK mod count.
TEST(BenchStart, SharedGpuTimingRunsRanksOnGpusModCount) {
  BenchEnv env;
  env.local_world_size = 4;
  for (int rank = 0; rank < 4; ++rank) {
    env.local_rank = rank;
    EXPECT_FALSE(decide_start(machine(2), env, false).run);
    const StartDecision d = decide_start(machine(2), env, true);
    EXPECT_TRUE(d.run);
    EXPECT_EQ(d.device, rank % 2);
  }
  // With a GPU for every rank the flag changes nothing: rank r on GPU r.
  env.local_rank = 3;
  EXPECT_EQ(decide_start(machine(8), env, true).device, 3);
  EXPECT_EQ(decide_start(machine(8), env, false).device, 3);
}

TEST(BenchStart, RanksOnOneGpuAreRefusedUnlessAsked) {
  const std::vector<std::string> apart = {"0000:19:00.0", "0000:3B:00.0"};
  const std::vector<std::string> together = {"0000:19:00.0", "0000:3B:00.0", "0000:19:00.0"};
  EXPECT_FALSE(ranks_share_a_gpu(apart));
  EXPECT_FALSE(ranks_share_a_gpu({"0000:19:00.0"}));
  EXPECT_TRUE(ranks_share_a_gpu(together));
  EXPECT_NO_THROW(check_gpu_sharing(apart, false));
  EXPECT_NO_THROW(check_gpu_sharing(together, true));
  try {
    check_gpu_sharing(together, false);
    FAIL() << "ranks 0 and 2 share a GPU without --shared-gpu-timing";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_TRUE(mentions(e.message(), "ranks 0 and 2 run on one GPU (0000:19:00.0)")) << e.message();
    EXPECT_TRUE(mentions(e.message(), "--shared-gpu-timing")) << e.message();
  }
}

TEST(BenchStart, ReadsRequireGpu) {
  unsetenv("WORLD_SIZE");
  unsetenv("EPCOMM_REQUIRE_GPU");
  EXPECT_FALSE(read_env().require_gpu);
  setenv("EPCOMM_REQUIRE_GPU", "1", 1);
  EXPECT_TRUE(read_env().require_gpu);
  setenv("EPCOMM_REQUIRE_GPU", "off", 1);
  EXPECT_FALSE(read_env().require_gpu);
  setenv("EPCOMM_REQUIRE_GPU", "maybe", 1);
  EXPECT_THROW(read_env(), Error);
  unsetenv("EPCOMM_REQUIRE_GPU");
}

}  // namespace
}  // namespace epcomm::bench
