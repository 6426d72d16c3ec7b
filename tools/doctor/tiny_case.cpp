// The doctor's end-to-end case and its checks against the CPU reference (tiny_case.hpp).
#include "doctor/tiny_case.hpp"

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

namespace epcomm::doctor {
namespace {

// Combine tolerances (those of the GPU tier, tests/gpu/checks.hpp): x is summed in float32 and
// rounded to BF16 once; weights stay float32 sums.
constexpr float kXRel = 1e-2f, kXAbs = 1e-2f;
constexpr float kWeightRel = 1e-5f, kWeightAbs = 1e-6f;
constexpr int kEmptySlotOneIn = 8;           // about 1 top-k slot in 8 is -1
constexpr std::int64_t kTokenToNowhere = 3;  // this token selects no expert

// NaN-aware: a NaN where the reference is a number is never close.
bool close_to(float got, float want, float rel, float abs) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= rel * std::fabs(want) + abs;
}

// "name: 3 of 4096 differ, first at element 17 (row 0, column 17)" or empty. `row` elements per row.
template <typename T, typename Same>
std::string differences(const char* name, const std::vector<T>& got, const std::vector<T>& want,
                        std::size_t count, std::size_t row, Same same) {
  if (got.size() < count || want.size() < count) {
    return std::string(name) + ": " + std::to_string(got.size()) + " elements, expected " +
           std::to_string(count);
  }
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!same(got[i], want[i]) && bad++ == 0) first = i;
  }
  if (bad == 0) return {};
  return std::string(name) + ": " + std::to_string(bad) + " of " + std::to_string(count) +
         " differ, first at row " + std::to_string(first / row) + ", column " + std::to_string(first % row);
}

template <typename T>
std::string bitwise(const char* name, const std::vector<T>& got, const std::vector<T>& want,
                    std::size_t count, std::size_t row) {
  return differences(name, got, want, count, row,
                     [](const T& a, const T& b) { return std::memcmp(&a, &b, sizeof(T)) == 0; });
}

std::vector<std::uint16_t> as_bf16(const std::vector<std::uint8_t>& bytes) {
  std::vector<std::uint16_t> v(bytes.size() / 2);
  std::memcpy(v.data(), bytes.data(), v.size() * 2);
  return v;
}

}  // namespace

std::string TinyCase::describe() const {
  return std::to_string(num_ranks) + (num_ranks == 1 ? " rank" : " ranks") + " x " +
         std::to_string(num_tokens) + " tokens, hidden " + std::to_string(hidden) + ", " +
         std::to_string(experts_per_rank) + " experts per rank, top-" + std::to_string(num_topk);
}

RankInputs make_inputs(const TinyCase& c, int rank_idx) {
  std::mt19937_64 rng(c.seed * 1000003ull + static_cast<std::uint64_t>(rank_idx));
  RankInputs in;
  const std::int64_t T = c.num_tokens;
  const int k = c.num_topk, E = c.num_experts();
  in.topk_idx.resize(static_cast<std::size_t>(T * k));
  std::vector<int> experts(static_cast<std::size_t>(E));
  std::iota(experts.begin(), experts.end(), 0);
  for (std::int64_t t = 0; t < T; ++t) {
    for (int j = 0; j < k; ++j) {  // a partial Fisher-Yates shuffle: k distinct experts
      std::uniform_int_distribution<int> pick(j, E - 1);
      std::swap(experts[static_cast<std::size_t>(j)], experts[static_cast<std::size_t>(pick(rng))]);
      const bool empty = t == kTokenToNowhere || rng() % kEmptySlotOneIn == 0;
      in.topk_idx[static_cast<std::size_t>(t * k + j)] = empty ? -1 : experts[static_cast<std::size_t>(j)];
    }
  }
  std::uniform_real_distribution<float> weight(0.05f, 1.0f), value(-2.0f, 2.0f);
  in.weights.resize(in.topk_idx.size());
  for (float& w : in.weights) w = weight(rng);
  in.x.resize(static_cast<std::size_t>(T * c.hidden));
  for (std::uint16_t& v : in.x) v = ref::float_to_bf16(value(rng));
  return in;
}

std::vector<RankInputs> make_all_inputs(const TinyCase& c) {
  std::vector<RankInputs> all;
  for (int r = 0; r < c.num_ranks; ++r) all.push_back(make_inputs(c, r));
  return all;
}

// ---- high-throughput ----------------------------------------------------------------------------

std::vector<HtExpected> expect_ht(const TinyCase& c, const std::vector<RankInputs>& inputs) {
  const ref::Geometry g = c.geometry();
  std::vector<ref::HtRankInput> ht_in;
  std::vector<HtExpected> want(static_cast<std::size_t>(c.num_ranks));
  for (int r = 0; r < c.num_ranks; ++r) {
    const RankInputs& in = inputs[static_cast<std::size_t>(r)];
    want[static_cast<std::size_t>(r)].layout =
        ref::get_dispatch_layout(g, in.topk_idx, c.num_tokens, c.num_topk);
    ref::HtRankInput h;
    h.num_tokens = c.num_tokens;
    h.num_topk = c.num_topk;
    h.topk_idx = in.topk_idx;
    h.topk_weights = in.weights;
    h.row_bytes = c.hidden * 2;
    h.x.resize(in.x.size() * 2);
    std::memcpy(h.x.data(), in.x.data(), h.x.size());
    ht_in.push_back(std::move(h));
  }
  const std::vector<ref::HtRankOutput> dispatched = ref::ht_dispatch(g, ht_in, {});
  std::vector<ref::HtRoute> routes;
  std::vector<ref::HtCombineRankInput> combine_in;
  for (const ref::HtRankOutput& d : dispatched) {
    routes.push_back(d.route);
    combine_in.push_back({as_bf16(d.recv_x), d.recv_topk_weights, {}, {}});
  }
  const std::vector<std::int64_t> num_tokens(static_cast<std::size_t>(c.num_ranks), c.num_tokens);
  const std::vector<ref::HtCombineRankOutput> combined =
      ref::ht_combine(c.hidden, c.num_topk, num_tokens, routes, combine_in);
  for (std::size_t r = 0; r < want.size(); ++r) {
    want[r].dispatch = dispatched[r];
    want[r].combine = combined[r];
  }
  return want;
}

std::string compare_ht(const HtGot& got, const HtExpected& want) {
  const ref::HtRankOutput& d = want.dispatch;
  const std::size_t R = want.layout.num_tokens_per_rank.size();
  const std::size_t k = d.num_rows > 0 ? d.recv_topk_idx.size() / static_cast<std::size_t>(d.num_rows) : 1;
  const std::size_t row_bytes = d.num_rows > 0 ? d.recv_x.size() / static_cast<std::size_t>(d.num_rows) : 1;
  const std::size_t rows = static_cast<std::size_t>(d.num_recv_tokens);
  const std::size_t hidden = row_bytes / 2;
  for (std::string diff :
       {bitwise("layout num_tokens_per_rank", got.num_tokens_per_rank, want.layout.num_tokens_per_rank, R, R),
        bitwise("layout num_tokens_per_expert", got.num_tokens_per_expert, want.layout.num_tokens_per_expert,
                want.layout.num_tokens_per_expert.size(), want.layout.num_tokens_per_expert.size()),
        bitwise("layout is_token_in_rank", got.is_token_in_rank, want.layout.is_token_in_rank,
                want.layout.is_token_in_rank.size(), R)}) {
    if (!diff.empty()) return diff;
  }
  if (got.num_recv_tokens != d.num_recv_tokens) {
    return "dispatch received " + std::to_string(got.num_recv_tokens) + " rows, the reference " +
           std::to_string(d.num_recv_tokens);
  }
  const std::vector<int> per_expert(d.num_recv_tokens_per_expert.begin(), d.num_recv_tokens_per_expert.end());
  const auto weights_close = [](float a, float b) { return close_to(a, b, kWeightRel, kWeightAbs); };
  const auto x_close = [](std::uint16_t a, std::uint16_t b) {
    return close_to(ref::bf16_to_float(a), ref::bf16_to_float(b), kXRel, kXAbs);
  };
  for (std::string diff :
       {bitwise("dispatch num_recv_tokens_per_expert", got.num_recv_tokens_per_expert, per_expert,
                per_expert.size(), per_expert.size()),
        bitwise("dispatch recv_x (bytes)", got.recv_x, d.recv_x, rows * row_bytes, row_bytes),
        bitwise("dispatch recv_topk_idx", got.recv_topk_idx, d.recv_topk_idx, rows * k, k),
        bitwise("dispatch recv_topk_weights", got.recv_topk_weights, d.recv_topk_weights, rows * k, k),
        differences("combine x", got.combined_x, want.combine.out, want.combine.out.size(), hidden, x_close),
        differences("combine topk_weights", got.combined_weights, want.combine.topk_weights,
                    want.combine.topk_weights.size(), k, weights_close)}) {
    if (!diff.empty()) return diff;
  }
  return {};
}

// ---- low-latency --------------------------------------------------------------------------------

std::vector<std::uint16_t> echo_y(const TinyCase& c, const std::vector<std::int64_t>& layout_range,
                                  const std::vector<std::int32_t>& src_info,
                                  const std::vector<RankInputs>& inputs) {
  const std::int64_t nle = c.experts_per_rank, R = c.num_ranks, cap = R * c.num_tokens, H = c.hidden;
  std::vector<std::uint16_t> y(static_cast<std::size_t>(nle * cap * H), 0);
  for (std::int64_t e = 0; e < nle; ++e) {
    for (std::int64_t s = 0; s < R; ++s) {
      const std::int64_t range = layout_range[static_cast<std::size_t>(e * R + s)];
      const std::int64_t begin = range >> 32, count = range & 0xffffffff;
      for (std::int64_t i = begin; i < begin + count && i < cap; ++i) {
        const std::int32_t t = src_info[static_cast<std::size_t>(e * cap + i)];
        if (t < 0 || t >= c.num_tokens) continue;  // a wrong index: the dispatch check says so
        const auto& x = inputs[static_cast<std::size_t>(s)].x;
        std::memcpy(&y[static_cast<std::size_t>((e * cap + i) * H)], &x[static_cast<std::size_t>(t * H)],
                    static_cast<std::size_t>(H) * 2);
      }
    }
  }
  return y;
}

LlExpected expect_ll(const TinyCase& c, const std::vector<RankInputs>& inputs) {
  const ref::Geometry g = c.geometry();
  std::vector<ref::LlRankInput> ll_in;
  std::vector<std::vector<float>> weights;
  for (const RankInputs& in : inputs) {
    ll_in.push_back({c.num_tokens, c.num_topk, in.topk_idx, in.x});
    weights.push_back(in.weights);
  }
  LlExpected want;
  want.dispatch = ref::ll_dispatch(g, c.hidden, c.num_tokens, ll_in, {.use_fp8 = true});
  std::vector<std::vector<std::uint16_t>> y;
  for (const ref::LlRankOutput& d : want.dispatch) y.push_back(echo_y(c, d.layout_range, d.src_info, inputs));
  want.out = ref::ll_combine(g, c.hidden, want.dispatch, y, ll_in, weights);
  return want;
}

std::string compare_ll_dispatch(const TinyCase& c, const LlGot& got, const ref::LlRankOutput& want) {
  const std::int64_t nle = c.experts_per_rank, R = c.num_ranks, cap = want.capacity, H = c.hidden;
  const std::int64_t blocks = H / ref::kFp8BlockSize;
  if (std::string diff =
          bitwise("recv_count", got.recv_count, want.recv_count, static_cast<std::size_t>(nle), 1);
      !diff.empty()) {
    return diff;
  }
  if (got.layout_range.size() < static_cast<std::size_t>(nle * R) ||
      got.src_info.size() < static_cast<std::size_t>(nle * cap) ||
      got.recv_x.size() < static_cast<std::size_t>(nle * cap * H) ||
      got.recv_scales.size() < static_cast<std::size_t>(nle * blocks * cap)) {
    return "dispatch outputs are smaller than [nle, R*T, hidden] and their companions";
  }
  for (std::int64_t e = 0; e < nle; ++e) {
    const std::string where = "expert " + std::to_string(e) + " ";
    for (std::int64_t s = 0; s < R; ++s) {
      const std::int64_t g_range = got.layout_range[static_cast<std::size_t>(e * R + s)];
      const std::int64_t w_range = want.layout_range[static_cast<std::size_t>(e * R + s)];
      const std::int64_t g_begin = g_range >> 32, count = g_range & 0xffffffff, w_begin = w_range >> 32;
      if (count != (w_range & 0xffffffff) || g_begin < 0 ||
          g_begin + count > got.recv_count[static_cast<std::size_t>(e)]) {
        return where + "source rank " + std::to_string(s) + ": layout_range (begin " +
               std::to_string(g_begin) + ", " + std::to_string(count) + " rows) against " +
               std::to_string(w_range & 0xffffffff) + " rows in the reference";
      }
      std::vector<bool> matched(static_cast<std::size_t>(count), false);
      for (std::int64_t i = g_begin; i < g_begin + count; ++i) {
        const std::int32_t t = got.src_info[static_cast<std::size_t>(e * cap + i)];
        std::int64_t j = w_begin;  // the reference's row of the same token
        while (j < w_begin + count && (matched[static_cast<std::size_t>(j - w_begin)] ||
                                       want.src_info[static_cast<std::size_t>(e * cap + j)] != t)) {
          ++j;
        }
        const std::string row = where + "row " + std::to_string(i) + " (source rank " + std::to_string(s) +
                                ", token " + std::to_string(t) + ")";
        if (j == w_begin + count) return row + ": no such row in the reference (src_info wrong or repeated)";
        matched[static_cast<std::size_t>(j - w_begin)] = true;
        if (std::memcmp(&got.recv_x[static_cast<std::size_t>((e * cap + i) * H)],
                        &want.recv_x[static_cast<std::size_t>((e * cap + j) * H)],
                        static_cast<std::size_t>(H)) != 0) {
          return row + ": FP8 payload differs from the reference";
        }
        for (std::int64_t b = 0; b < blocks; ++b) {
          const float gs = got.recv_scales[static_cast<std::size_t>((e * blocks + b) * cap + i)];
          const float ws = want.recv_scales[static_cast<std::size_t>((e * blocks + b) * cap + j)];
          if (std::memcmp(&gs, &ws, sizeof(float)) != 0) {
            return row + ": scale of block " + std::to_string(b) + " is " + std::to_string(gs) +
                   ", the reference " + std::to_string(ws);
          }
        }
      }
    }
  }
  return {};
}

std::string compare_ll_combine(const std::vector<std::uint16_t>& got, const std::vector<std::uint16_t>& want,
                               std::int64_t hidden) {
  const auto row = static_cast<std::size_t>(hidden);
  return differences("low-latency combine out", got, want, want.size(), row,
                     [](std::uint16_t a, std::uint16_t b) {
                       return close_to(ref::bf16_to_float(a), ref::bf16_to_float(b), kXRel, kXAbs);
                     });
}

}  // namespace epcomm::doctor
