// epcomm-bench on a multi-domain Buffer: --ranks-per-domain, --nic-gbps, EPCOMM_RANKS_PER_DOMAIN and
// their refusals (tools/bench/cli.hpp), and the result fields of such a run (tools/bench/report.hpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "bench/cli.hpp"
#include "bench/report.hpp"
#include "expect_error.hpp"

namespace epcomm::bench {
namespace {

Options parse(std::vector<const char*> args) {
  args.insert(args.begin(), "epcomm-bench");
  return parse_args(static_cast<int>(args.size()), args.data());
}

BenchEnv launched(int world_size, int local_world_size, int env_ranks_per_domain = 0) {
  BenchEnv env;
  env.launched = true;
  env.world_size = world_size;
  env.local_world_size = local_world_size;
  env.ranks_per_domain = env_ranks_per_domain;
  return env;
}

TEST(BenchMdCli, FlagsAndDefaults) {
  const Options plain = parse({});
  EXPECT_EQ(plain.ranks_per_domain, 0);
  EXPECT_DOUBLE_EQ(plain.nic_gbps, 50.0);
  const Options o = parse({"--ranks-per-domain", "2", "--nic-gbps=25.5"});
  EXPECT_EQ(o.ranks_per_domain, 2);
  EXPECT_DOUBLE_EQ(o.nic_gbps, 25.5);
  for (const char* bad : {"0", "73", "two", ""})
    test::expect_arg_error([&] { parse({"--ranks-per-domain", bad}); }, "--ranks-per-domain");
  for (const char* bad : {"0", "-1", "fast", "20000"})
    test::expect_arg_error([&] { parse({"--nic-gbps", bad}); }, "--nic-gbps");
  EXPECT_NE(usage().find("--ranks-per-domain G"), std::string::npos);
  EXPECT_NE(usage().find("--nic-gbps X"), std::string::npos);
}

TEST(BenchMdCli, TheDomainSizeComesFromTheFlagOrTheEnvironment) {
  EXPECT_EQ(resolve_ranks_per_domain(parse({}), launched(4, 4)), 0);
  EXPECT_EQ(resolve_ranks_per_domain(parse({"--ranks-per-domain", "2"}), launched(4, 4)), 2);
  EXPECT_EQ(resolve_ranks_per_domain(parse({}), launched(4, 4, 2)), 2);  // the Buffer would use it
  EXPECT_EQ(resolve_ranks_per_domain(parse({"--ranks-per-domain", "1"}), launched(4, 4, 1)), 1);
  EXPECT_EQ(resolve_ranks_per_domain(parse({"--ranks-per-domain", "4"}), launched(8, 4)), 4);  // 2 hosts
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "2"}), launched(4, 4, 4));
      },
      "--ranks-per-domain 2 and EPCOMM_RANKS_PER_DOMAIN=4 disagree");
}

TEST(BenchMdCli, RefusesWhatAMultiDomainRunCannotDo) {
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "3"}), launched(4, 4));
      },
      "must divide the 4 ranks of the run");
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "4"}), launched(8, 2));
      },
      "must divide the 2 ranks of this host");
  test::expect_arg_error([] { resolve_ranks_per_domain(parse({}), launched(6, 6, 4)); },
                         "must divide the 6 ranks of the run");
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "1", "--tokens", "8", "--hidden", "128",
                                        "--topk", "2", "--experts", "8", "--mode", "ll"}),
                                 launched(2, 2));
      },
      "the bench does not run low-latency on multi-domain Buffers yet");
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "1", "--sms", "1,24"}), launched(2, 2));
      },
      "--sms 1");
  // Without a launcher: one rank, a domain of one.
  EXPECT_EQ(resolve_ranks_per_domain(parse({"--ranks-per-domain", "1"}), BenchEnv{}), 1);
  test::expect_arg_error(
      [] {
        resolve_ranks_per_domain(parse({"--ranks-per-domain", "2"}), BenchEnv{});
      },
      "must divide the 1 ranks");
}

TEST(BenchMdCli, ReadsTheEnvironmentAsTheBufferDoes) {
  unsetenv("WORLD_SIZE");
  unsetenv("EPCOMM_RANKS_PER_DOMAIN");
  EXPECT_EQ(read_env().ranks_per_domain, 0);
  setenv("EPCOMM_RANKS_PER_DOMAIN", "2", 1);
  EXPECT_EQ(read_env().ranks_per_domain, 2);
  setenv("EPCOMM_RANKS_PER_DOMAIN", "0", 1);
  EXPECT_EQ(read_env().ranks_per_domain, 0);
  for (const char* bad : {"73", "-1", "x"}) {
    setenv("EPCOMM_RANKS_PER_DOMAIN", bad, 1);
    test::expect_arg_error([] { read_env(); }, "EPCOMM_RANKS_PER_DOMAIN");
  }
  unsetenv("EPCOMM_RANKS_PER_DOMAIN");
}

// A multi-domain run may put ranks on one GPU (they are checked, not timed): the start decision
// and the sharing check let it, as they let --shared-gpu-timing.
TEST(BenchMdCli, RanksMayShareAGpu) {
  BenchEnv env = launched(4, 4);
  env.local_rank = 3;
  GpuPresence one;
  one.num_gpus = 1;
  one.driver_installed = true;
  const StartDecision d = decide_start(one, env, /*may_share=*/true);
  EXPECT_TRUE(d.run);
  EXPECT_EQ(d.device, 0);
  EXPECT_FALSE(decide_start(one, env, false).run);
  EXPECT_NO_THROW(check_gpu_sharing({"h 0000:19:00.0", "h 0000:19:00.0"}, true));
}

RunReport md_report(bool correctness_only) {
  RunReport r;
  r.workload = "custom-t512-h7168-k8-e256-uniform";
  r.card = "NVIDIA H200";
  r.num_gpus = 4;
  r.shared_gpus = true;
  r.multi_domain = MdRunInfo{
      .ranks_per_domain = 2, .num_domains = 2, .nic_gbps = 50.0, .correctness_only = correctness_only};
  ResultRow row;
  row.impl = "epcomm";
  row.op = "dispatch";
  row.dtype = "fp8";
  row.num_sms = 24;
  row.tokens = 512;
  row.hidden = 7168;
  row.timed = !correctness_only;
  row.time_us = correctness_only ? 0.0 : 1500.0;
  row.check = "pass";
  row.multi_domain =
      MdRowFields{.nic_sent_bytes = 3.5e6, .nic_recv_bytes = 3.25e6, .nvl_bytes = 2e6, .nic_floor_us = 70.0};
  r.rows = {row};
  return r;
}

// The smallest check that a JSON member is there with a value: `"key": value`.
std::string member(const std::string& json, const std::string& key) {
  const std::string tag = "\"" + key + "\": ";
  const auto at = json.find(tag);
  if (at == std::string::npos) return "<absent>";
  const auto begin = at + tag.size();
  return json.substr(begin, json.find_first_of(",}\n", begin) - begin);
}

TEST(BenchMdReport, RowsCarryTheDomainsAndTheirBytes) {
  const RunReport report = md_report(/*correctness_only=*/false);
  const std::string json = to_json(report);
  EXPECT_EQ(member(json, "ranks_per_domain"), "2");  // top level first
  EXPECT_EQ(member(json, "domains"), "2");
  EXPECT_EQ(member(json, "nic_gbps"), "50.0");
  EXPECT_EQ(member(json, "correctness_only"), "false");
  EXPECT_EQ(member(json, "nic_sent_bytes"), "3500000.0");
  EXPECT_EQ(member(json, "nic_recv_bytes"), "3250000.0");
  EXPECT_EQ(member(json, "nvl_bytes"), "2000000.0");
  EXPECT_EQ(member(json, "nic_floor_us"), "70.0");
  EXPECT_EQ(member(json, "time_us"), "1500.0");
  const auto row_at = json.find("\"rows\"");
  EXPECT_NE(json.find("\"ranks_per_domain\": 2", row_at), std::string::npos) << json;  // on the row too

  const std::string table = format_md_table(report);
  EXPECT_NE(table.find("2 domains x 2 ranks"), std::string::npos) << table;
  EXPECT_NE(table.find("3.500"), std::string::npos) << table;  // MB sent
  EXPECT_NE(table.find("70.0"), std::string::npos) << table;
  EXPECT_NE(table.find("1500.0"), std::string::npos) << table;

  const std::string csv = to_csv_rows(report);
  EXPECT_NE(csv.find(",true,2,2,50.0,3500000.0,3250000.0,2000000.0,70.0\n"), std::string::npos) << csv;

  RunReport single = report;  // a run in one domain has none of it
  single.multi_domain.reset();
  single.rows[0].multi_domain.reset();
  EXPECT_EQ(member(to_json(single), "nic_sent_bytes"), "<absent>");
  EXPECT_EQ(format_md_table(single), "");
  EXPECT_NE(to_csv_rows(single).find(",true,,,,,,,\n"), std::string::npos) << to_csv_rows(single);
}

TEST(BenchMdReport, CorrectnessOnlyRowsHaveNoTime) {
  const RunReport report = md_report(/*correctness_only=*/true);
  const std::string json = to_json(report);
  EXPECT_EQ(member(json, "correctness_only"), "true");
  EXPECT_EQ(member(json, "time_us"), "null");
  EXPECT_EQ(member(json, "logical_gbps"), "null");
  EXPECT_EQ(member(json, "nic_floor_us"), "70.0");  // the floor stands: it comes from the routing
  const std::string table = format_table(report);
  EXPECT_NE(table.find(kCorrectnessOnlyNote), std::string::npos) << table;
  EXPECT_EQ(table.find(kSharedGpuNote), std::string::npos) << table;  // nothing was timed
  EXPECT_NE(to_csv_rows(report).find("7168,,"), std::string::npos) << to_csv_rows(report);  // empty time
  EXPECT_TRUE(fastest_epcomm_rows(report.rows).empty());  // no time, so not "fastest"
}

}  // namespace
}  // namespace epcomm::bench
