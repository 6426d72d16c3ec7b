// epcomm-bench's statistics (tools/bench/stats.hpp): median, and max / all over ranks through a
// bootstrap whose other ranks are simulated.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "bench/stats.hpp"
#include "epcomm/error.hpp"

namespace epcomm::bench {
namespace {

// A bootstrap of `others.size()` ranks, this one being `rank`: every all-gather of `bytes` bytes
// takes the other ranks' contributions from `others[r]` (its first `bytes` bytes).
std::unique_ptr<Bootstrap> simulated_group(int rank, std::vector<std::vector<uint8_t>> others) {
  const int size = static_cast<int>(others.size());
  return make_callback_bootstrap(rank, size, [rank, others](const void* in, void* out, std::size_t bytes) {
    auto* dst = static_cast<uint8_t*>(out);
    for (int r = 0; r < static_cast<int>(others.size()); ++r)
      std::memcpy(dst + r * bytes, r == rank ? in : others[r].data(), bytes);
  });
}

template <typename T>
std::vector<uint8_t> bytes_of(T value) {
  std::vector<uint8_t> b(sizeof(T));
  std::memcpy(b.data(), &value, sizeof(T));
  return b;
}

TEST(BenchStats, Median) {
  EXPECT_EQ(median({5.0}), 5.0);
  EXPECT_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(median({4.0, 1.0, 3.0, 2.0}), 2.5);
  EXPECT_EQ(median({10.0, 1.0, 1.0, 1.0, 1000.0}), 1.0);  // outliers do not move it
  EXPECT_THROW(median({}), Error);
}

TEST(BenchStats, MaxOverRanks) {
  auto group = simulated_group(1, {bytes_of(3.5), {}, bytes_of(7.25), bytes_of(1.0)});
  EXPECT_EQ(max_over_ranks(*group, 2.0), 7.25);
  EXPECT_EQ(max_over_ranks(*group, 9.0), 9.0);
  EXPECT_EQ(gather_values(*group, 2.0), (std::vector<double>{3.5, 2.0, 7.25, 1.0}));
}

// A diagnostic some rank could not measure (its preamble pass threw) is reported as missing, not as
// the others' max.
TEST(BenchStats, MaxOverRanksIfAllHaveOne) {
  const double none = std::nan("");
  auto all_measured = simulated_group(0, {{}, bytes_of(21.5), bytes_of(19.0)});
  EXPECT_EQ(max_over_ranks_if_all(*all_measured, 20.0), std::optional<double>(21.5));
  EXPECT_EQ(max_over_ranks_if_all(*all_measured, std::nullopt), std::nullopt);  // this rank has none
  auto one_missing = simulated_group(0, {{}, bytes_of(none), bytes_of(19.0)});
  EXPECT_EQ(max_over_ranks_if_all(*one_missing, 20.0), std::nullopt);
}

TEST(BenchStats, MedianPerRankThenMaxOverRanks) {
  // Rank 0 measured {100, 101, 250}: median 101. The other rank's median is 120: the report uses 120.
  auto group = simulated_group(0, {{}, bytes_of(120.0)});
  EXPECT_EQ(max_over_ranks(*group, median({100.0, 250.0, 101.0})), 120.0);
}

TEST(BenchStats, AllRanksTrue) {
  auto agree = simulated_group(0, {{}, {1}, {1}});
  EXPECT_TRUE(all_ranks_true(*agree, true));
  EXPECT_FALSE(all_ranks_true(*agree, false));
  auto one_fails = simulated_group(2, {{1}, {0}, {}});
  EXPECT_FALSE(all_ranks_true(*one_fails, true));
}

}  // namespace
}  // namespace epcomm::bench
