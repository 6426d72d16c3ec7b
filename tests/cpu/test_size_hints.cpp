// ht_nvl_bytes_hint (epcomm/size_hints.hpp): a region of the hinted size holds the worst case of
// every dispatch and combine form (num_ranks x max_tokens_per_rank rows), as the operations lay it
// out and check it (HtDispatchLayout / HtCombineLayout, check_rows_fit); and it is not wasteful.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "epcomm/size_hints.hpp"
#include "expect_error.hpp"
#include "intranode/ht_layout.hpp"
#include "intranode/ht_plan.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {
namespace {

struct HintCase {
  std::int64_t tokens;
  std::int64_t hidden;
  int ranks;
  int max_topk;
};

// Every rank sends every token to every rank: each rank receives (dispatch) and gets back (combine
// push) num_ranks x tokens rows, the most any routing gives.
std::vector<std::int32_t> all_to_all_counts(int G, std::int64_t tokens) {
  return std::vector<std::int32_t>(static_cast<std::size_t>(G) * G, static_cast<std::int32_t>(tokens));
}

class HintHoldsWorstCase : public ::testing::TestWithParam<HintCase> {};

TEST_P(HintHoldsWorstCase, EveryDispatchAndCombineFormFits) {
  const HintCase c = GetParam();
  const std::int64_t hint = ht_nvl_bytes_hint(c.tokens, c.hidden, c.ranks, c.max_topk);
  ASSERT_GT(hint, 0);
  EXPECT_EQ(hint % static_cast<std::int64_t>(kRegionAlignment), 0);
  const auto bytes = static_cast<std::size_t>(hint);
  const std::int64_t rows = c.tokens * c.ranks;
  const std::vector<std::int32_t> counts = all_to_all_counts(c.ranks, c.tokens);
  const std::vector<std::int64_t> received = rows_received(counts.data(), c.ranks);

  for (int k = 0; k <= c.max_topk; k += (c.max_topk > 4 ? c.max_topk / 4 : 1)) {
    for (int idx_bytes : {4, 8}) {
      for (bool fp8 : {false, true}) {
        if (fp8 && c.hidden % 128 != 0) continue;  // FP8 rows need whole scale blocks
        const HtDispatchLayout d = HtDispatchLayout::make(bytes, fp8 ? c.hidden : c.hidden * 2,
                                                          fp8 ? static_cast<int>(c.hidden / 128) : 0, k, idx_bytes);
        EXPECT_GE(d.cap_rows, rows) << "k " << k << " idx " << idx_bytes << " fp8 " << fp8;
        EXPECT_LE(d.total_bytes, bytes);
        // What dispatch checks after notify, in worst-case mode and for a cached dispatch.
        EXPECT_NO_THROW(check_rows_fit(received, d.cap_rows, d.bytes_per_row(), "dispatch"));
        EXPECT_NO_THROW(check_rows_fit({rows}, d.cap_rows, d.bytes_per_row(), "dispatch (num_worst_tokens)"));
      }
    }
    const HtCombineLayout comb = HtCombineLayout::make(bytes, c.hidden * 2, k);
    EXPECT_LE(comb.total_bytes, bytes);
    for (bool pull : {false, true})
      EXPECT_NO_THROW(check_rows_fit(combine_region_rows(counts.data(), c.ranks, pull), comb.cap_rows,
                                     HtCombineLayout::bytes_per_row(comb.row_bytes, k), "combine"));
  }
}

// One alignment unit less holds fewer rows than the worst case in the widest form (BF16 rows with
// max_topk int64 indices): the hint is the least multiple of 4096 that works.
TEST_P(HintHoldsWorstCase, OneAlignmentLessIsTooSmall) {
  const HintCase c = GetParam();
  const auto bytes = static_cast<std::size_t>(ht_nvl_bytes_hint(c.tokens, c.hidden, c.ranks, c.max_topk));
  const std::size_t less = bytes - kRegionAlignment;
  const std::int64_t dispatch_cap = HtDispatchLayout::make(less, c.hidden * 2, 0, c.max_topk, 8).cap_rows;
  const std::int64_t combine_cap = HtCombineLayout::make(less, c.hidden * 2, c.max_topk).cap_rows;
  EXPECT_LT(std::min(dispatch_cap, combine_cap), c.tokens * c.ranks);
}

INSTANTIATE_TEST_SUITE_P(Shapes, HintHoldsWorstCase,
                         ::testing::Values(HintCase{4096, 7168, 8, 32}, HintCase{4096, 7168, 8, 8},
                                           HintCase{1, 8, 1, 0}, HintCase{1, 128, 2, 1},
                                           HintCase{128, 2048, 72, 32}, HintCase{8192, 4096, 4, 8},
                                           HintCase{33, 7168, 3, 9}, HintCase{4096, 24, 2, 32}));

TEST(HtNvlBytesHint, InverseOfTheLayoutsIsExact) {
  for (std::int64_t rows : {0, 1, 7, 4096, 65536}) {
    const std::size_t d = HtDispatchLayout::bytes_for_rows(rows, 14336, 0, 8, 8);
    EXPECT_EQ(HtDispatchLayout::make(d, 14336, 0, 8, 8).cap_rows, rows);
    if (rows > 0) EXPECT_EQ(HtDispatchLayout::make(d - 1, 14336, 0, 8, 8).cap_rows, rows - 1);
    const std::size_t c = HtCombineLayout::bytes_for_rows(rows, 14336, 8);
    EXPECT_EQ(HtCombineLayout::make(c, 14336, 8).cap_rows, rows);
    if (rows > 0) EXPECT_EQ(HtCombineLayout::make(c - 1, 14336, 8).cap_rows, rows - 1);
  }
}

TEST(HtNvlBytesHint, GrowsWithEveryArgument) {
  const std::int64_t base = ht_nvl_bytes_hint(1024, 4096, 4, 8);
  EXPECT_GT(ht_nvl_bytes_hint(2048, 4096, 4, 8), base);
  EXPECT_GT(ht_nvl_bytes_hint(1024, 8192, 4, 8), base);
  EXPECT_GT(ht_nvl_bytes_hint(1024, 4096, 8, 8), base);
  EXPECT_GE(ht_nvl_bytes_hint(1024, 4096, 4, 16), base);
  EXPECT_EQ(ht_nvl_bytes_hint(1024, 4096, 4), ht_nvl_bytes_hint(1024, 4096, 4, kHtMaxTopk));
}

TEST(HtNvlBytesHint, RefusesArgumentsOutOfRangeByName) {
  using test::expect_arg_error;
  expect_arg_error([] { ht_nvl_bytes_hint(0, 7168, 8); }, "max_tokens_per_rank");
  expect_arg_error([] { ht_nvl_bytes_hint(std::int64_t{1} << 31, 7168, 8); }, "max_tokens_per_rank");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 0, 8); }, "hidden");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 7, 8); }, "hidden");  // 14-byte rows
  expect_arg_error([] { ht_nvl_bytes_hint(4096, (std::int64_t{1} << 17) + 8, 8); }, "hidden");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 7168, 0); }, "num_ranks");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 7168, 73); }, "num_ranks");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 7168, 8, -1); }, "max_topk");
  expect_arg_error([] { ht_nvl_bytes_hint(4096, 7168, 8, kHtMaxTopk + 1); }, "max_topk");
}

}  // namespace
}  // namespace epcomm
