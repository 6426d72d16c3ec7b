// epcomm-bench's command line (tools/bench/cli.hpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench/cli.hpp"
#include "epcomm/error.hpp"

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
}

TEST(BenchCli, BadArgumentsNameTheFlag) {
  const auto message_of = [](std::vector<const char*> args) {
    try {
      parse(std::move(args));
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
      return e.message();
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of({"--iters", "0"}).find("--iters"), std::string::npos);
  EXPECT_NE(message_of({"--iters", "12x"}).find("12x"), std::string::npos);
  EXPECT_NE(message_of({"--warmup"}).find("expected a value"), std::string::npos);
  EXPECT_NE(message_of({"--workload", "ht-big"}).find("ht-dsv3"), std::string::npos);
  EXPECT_NE(message_of({"--sms", "8,,16"}).find("--sms"), std::string::npos);
  EXPECT_NE(message_of({"--ce-chunks", "9"}).find("at most 8"), std::string::npos);
  EXPECT_NE(message_of({"--ce-chunks", ""}).find("chunk counts"), std::string::npos);
  EXPECT_NE(message_of({"--min-efficiency", "-1"}).find("--min-efficiency"), std::string::npos);
  EXPECT_NE(message_of({"--no-check=1"}).find("takes no value"), std::string::npos);
  EXPECT_NE(message_of({"--frobnicate"}).find("--frobnicate"), std::string::npos);
}

}  // namespace
}  // namespace epcomm::bench
