// epcomm-doctor's end-to-end case (tools/doctor/tiny_case.hpp) without a GPU: its inputs, and its
// comparisons, which pass the reference's own outputs (also in another row order where the GPU may
// choose one) and fail poisoned (never-written) outputs and single wrong values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "doctor/tiny_case.hpp"

namespace epcomm::doctor {
namespace {

TinyCase two_ranks() {
  TinyCase c;
  c.num_ranks = 2;
  return c;
}

template <typename T>
std::vector<T> poisoned_like(const std::vector<T>& v) {
  std::vector<T> p(v.size());
  std::memset(p.data(), kPoisonByte, p.size() * sizeof(T));
  return p;
}

TEST(DoctorCase, Inputs) {
  const TinyCase c = two_ranks();
  EXPECT_EQ(c.describe(), "2 ranks x 128 tokens, hidden 2048, 8 experts per rank, top-4");
  const RankInputs a = make_inputs(c, 0), again = make_inputs(c, 0), b = make_inputs(c, 1);
  EXPECT_EQ(a.x, again.x);  // every rank makes every rank's inputs alike
  EXPECT_EQ(a.topk_idx, again.topk_idx);
  EXPECT_NE(a.x, b.x);
  std::size_t empty = 0;
  for (std::int64_t t = 0; t < c.num_tokens; ++t) {
    std::set<std::int64_t> seen;
    for (int j = 0; j < c.num_topk; ++j) {
      const std::int64_t e = a.topk_idx[static_cast<std::size_t>(t * c.num_topk + j)];
      ASSERT_GE(e, -1);
      ASSERT_LT(e, c.num_experts());
      if (e < 0) {
        ++empty;
      } else {
        EXPECT_TRUE(seen.insert(e).second) << "token " << t << " names expert " << e << " twice";
      }
    }
    if (t == 3) EXPECT_TRUE(seen.empty());
  }
  EXPECT_GT(empty, 4u);
  EXPECT_LT(empty, static_cast<std::size_t>(c.num_tokens * c.num_topk / 4));
  for (std::uint16_t v : a.x) ASSERT_LE(std::fabs(ref::bf16_to_float(v)), 2.0f);
  for (float w : a.weights) ASSERT_TRUE(w >= 0.05f && w < 1.0f);
}

HtGot got_of(const HtExpected& w) {
  HtGot g;
  g.num_tokens_per_rank = w.layout.num_tokens_per_rank;
  g.num_tokens_per_expert = w.layout.num_tokens_per_expert;
  g.is_token_in_rank = w.layout.is_token_in_rank;
  g.num_recv_tokens = w.dispatch.num_recv_tokens;
  g.recv_x = w.dispatch.recv_x;
  g.recv_topk_idx = w.dispatch.recv_topk_idx;
  g.recv_topk_weights = w.dispatch.recv_topk_weights;
  g.num_recv_tokens_per_expert.assign(w.dispatch.num_recv_tokens_per_expert.begin(),
                                      w.dispatch.num_recv_tokens_per_expert.end());
  g.combined_x = w.combine.out;
  g.combined_weights = w.combine.topk_weights;
  return g;
}

TEST(DoctorCase, HighThroughputComparison) {
  const TinyCase c = two_ranks();
  const std::vector<HtExpected> want = expect_ht(c, make_all_inputs(c));
  ASSERT_EQ(want.size(), 2u);
  for (const HtExpected& w : want) {
    ASSERT_GT(w.dispatch.num_recv_tokens, 0);
    EXPECT_EQ(compare_ht(got_of(w), w), "");
  }
  const HtExpected& w = want[1];
  const auto fails = [&](auto&& spoil, const std::string& needle) {
    HtGot g = got_of(w);
    spoil(g);
    const std::string diff = compare_ht(g, w);
    EXPECT_NE(diff.find(needle), std::string::npos) << "'" << needle << "' not in '" << diff << "'";
  };
  fails([](HtGot& g) { g.num_tokens_per_rank = poisoned_like(g.num_tokens_per_rank); },
        "layout num_tokens_per_rank");
  fails([](HtGot& g) { g.is_token_in_rank = poisoned_like(g.is_token_in_rank); }, "layout is_token_in_rank");
  fails([](HtGot& g) { g.num_recv_tokens += 1; }, "dispatch received");
  fails([](HtGot& g) { g.recv_x = poisoned_like(g.recv_x); }, "dispatch recv_x (bytes)");
  fails([](HtGot& g) { g.recv_x[2 * 4096 + 12] ^= 1; }, "recv_x (bytes): 1 of");
  fails([](HtGot& g) { g.recv_x[2 * 4096 + 12] ^= 1; }, "first at row 2, column 12");
  fails([](HtGot& g) { g.recv_topk_idx = poisoned_like(g.recv_topk_idx); }, "dispatch recv_topk_idx");
  fails([](HtGot& g) { g.recv_topk_weights = poisoned_like(g.recv_topk_weights); },
        "dispatch recv_topk_weights");
  fails([](HtGot& g) { g.num_recv_tokens_per_expert[0] += 1; }, "num_recv_tokens_per_expert");
  fails([](HtGot& g) { g.combined_x = poisoned_like(g.combined_x); }, "combine x");
  fails([](HtGot& g) { g.combined_x.pop_back(); }, "combine x: ");
  fails([](HtGot& g) { g.combined_weights = poisoned_like(g.combined_weights); }, "combine topk_weights");
  // Combine is compared within BF16 rounding: one unit in the last place passes, 0.5 does not.
  HtGot close = got_of(w);
  close.combined_x[7] = static_cast<std::uint16_t>(close.combined_x[7] + 1);
  EXPECT_EQ(compare_ht(close, w), "");
  fails([](HtGot& g) { g.combined_x[7] = ref::float_to_bf16(ref::bf16_to_float(g.combined_x[7]) + 0.5f); },
        "combine x: 1 of");
}

// The reference's dispatch outputs of one rank, as the GPU would return them, with each (expert,
// source) range's rows in reverse order: a legal order the comparison must accept.
LlGot reversed_rows(const TinyCase& c, const ref::LlRankOutput& w) {
  LlGot g{w.recv_count, w.layout_range, w.src_info, w.recv_x, w.recv_scales};
  const std::int64_t cap = w.capacity, H = c.hidden, blocks = H / 128;
  for (std::int64_t e = 0; e < c.experts_per_rank; ++e) {
    for (std::int64_t s = 0; s < c.num_ranks; ++s) {
      const std::int64_t range = w.layout_range[static_cast<std::size_t>(e * c.num_ranks + s)];
      const std::int64_t begin = range >> 32, count = range & 0xffffffff;
      for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t from = begin + i, to = begin + count - 1 - i;
        g.src_info[static_cast<std::size_t>(e * cap + to)] =
            w.src_info[static_cast<std::size_t>(e * cap + from)];
        std::memcpy(&g.recv_x[static_cast<std::size_t>((e * cap + to) * H)],
                    &w.recv_x[static_cast<std::size_t>((e * cap + from) * H)], static_cast<std::size_t>(H));
        for (std::int64_t b = 0; b < blocks; ++b) {
          g.recv_scales[static_cast<std::size_t>((e * blocks + b) * cap + to)] =
              w.recv_scales[static_cast<std::size_t>((e * blocks + b) * cap + from)];
        }
      }
    }
  }
  return g;
}

TEST(DoctorCase, LowLatencyComparison) {
  const TinyCase c = two_ranks();
  const std::vector<RankInputs> inputs = make_all_inputs(c);
  const LlExpected want = expect_ll(c, inputs);
  ASSERT_EQ(want.dispatch.size(), 2u);
  const ref::LlRankOutput& w = want.dispatch[0];
  ASSERT_GT(w.recv_count[0], 1);
  EXPECT_EQ(
      compare_ll_dispatch(c, LlGot{w.recv_count, w.layout_range, w.src_info, w.recv_x, w.recv_scales}, w),
      "");
  const LlGot reversed = reversed_rows(c, w);
  ASSERT_NE(reversed.src_info, w.src_info);
  EXPECT_EQ(compare_ll_dispatch(c, reversed, w), "");

  const auto fails = [&](auto&& spoil, const std::string& needle) {
    LlGot g = reversed;
    spoil(g);
    const std::string diff = compare_ll_dispatch(c, g, w);
    EXPECT_NE(diff.find(needle), std::string::npos) << "'" << needle << "' not in '" << diff << "'";
  };
  fails([](LlGot& g) { g.recv_count = poisoned_like(g.recv_count); }, "recv_count");
  fails([](LlGot& g) { g.layout_range = poisoned_like(g.layout_range); }, "layout_range");
  fails([](LlGot& g) { g.src_info = poisoned_like(g.src_info); }, "no such row in the reference");
  fails([](LlGot& g) { g.recv_x = poisoned_like(g.recv_x); }, "FP8 payload differs");
  fails([](LlGot& g) { g.recv_scales = poisoned_like(g.recv_scales); }, "scale of block 0");
  fails([](LlGot& g) { g.src_info[1] = g.src_info[0]; }, "expert 0 row 1");  // a token twice, one missing
  fails([](LlGot& g) { g.recv_x.resize(10); }, "smaller than");

  // Combine: y in the GPU's (here reversed) order gives the reference's result: rows are matched by
  // token, so the expectation does not depend on the order.
  std::vector<ref::LlRankOutput> reordered = want.dispatch;
  reordered[0].src_info = reversed.src_info;
  reordered[0].recv_x = reversed.recv_x;
  reordered[0].recv_scales = reversed.recv_scales;
  std::vector<ref::LlRankInput> ll_in;
  std::vector<std::vector<float>> weights;
  for (const RankInputs& in : inputs) {
    ll_in.push_back({c.num_tokens, c.num_topk, in.topk_idx, in.x});
    weights.push_back(in.weights);
  }
  std::vector<std::vector<std::uint16_t>> y;
  for (const ref::LlRankOutput& d : reordered) y.push_back(echo_y(c, d.layout_range, d.src_info, inputs));
  EXPECT_EQ(ref::ll_combine(c.geometry(), c.hidden, reordered, y, ll_in, weights), want.out);

  EXPECT_EQ(compare_ll_combine(want.out[1], want.out[1], c.hidden), "");
  const std::string poisoned = compare_ll_combine(poisoned_like(want.out[1]), want.out[1], c.hidden);
  EXPECT_NE(poisoned.find("low-latency combine out: "), std::string::npos) << poisoned;
  std::vector<std::uint16_t> off = want.out[1];
  off[2048 * 5 + 3] = ref::float_to_bf16(ref::bf16_to_float(off[2048 * 5 + 3]) + 1.0f);
  EXPECT_NE(
      compare_ll_combine(off, want.out[1], c.hidden).find("1 of 262144 differ, first at row 5, column 3"),
      std::string::npos);
}

}  // namespace
}  // namespace epcomm::doctor
