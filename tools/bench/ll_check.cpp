#include "bench/ll_check.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>

namespace epcomm::bench {

uint16_t y_value(uint64_t key) {
  key += 0x9e3779b97f4a7c15ull;
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
  key ^= key >> 31;
  return ref::float_to_bf16(static_cast<float>(key >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f);
}

uint64_t y_key(const Workload& w, int num_ranks, int64_t expert_idx, int src_rank, int64_t token_idx,
               InputSet set) {
  const auto key =
      static_cast<uint64_t>(((expert_idx * num_ranks + src_rank) * w.num_tokens + token_idx) * w.hidden);
  return key + (set == InputSet::kCheck ? kCheckSeedOffset : 0);
}

ExpectedLl compute_expected_ll(const Workload& w, int num_ranks, int me, InputSet set) {
  std::vector<ref::LlRankInput> inputs(static_cast<std::size_t>(num_ranks));
  std::vector<float> weights;
  for (int r = 0; r < num_ranks; ++r) {
    RankInputs in = make_rank_inputs(w, num_ranks, r, set);
    ref::LlRankInput& li = inputs[static_cast<std::size_t>(r)];
    li.num_tokens = in.bf16.num_tokens;
    li.num_topk = in.bf16.num_topk;
    li.topk_idx = std::move(in.bf16.topk_idx);
    li.x.resize(in.bf16.x.size() / sizeof(uint16_t));
    std::memcpy(li.x.data(), in.bf16.x.data(), in.bf16.x.size());  // little-endian BF16
    if (r == me) weights = std::move(in.bf16.topk_weights);
  }
  ExpectedLl e;
  e.dispatch = std::move(ref::ll_dispatch(geometry_of(w, num_ranks), w.hidden, w.num_tokens, inputs,
                                          ref::LlOptions{.use_fp8 = true})[static_cast<std::size_t>(me)]);
  // The reference combine's operations (ref::ll_combine): per holding rank (ascending), float32
  // products added in slot order from 0; the ranks' partials added from 0; one rounding.
  const auto H = static_cast<std::size_t>(w.hidden);
  const std::vector<int64_t>& idx = inputs[static_cast<std::size_t>(me)].topk_idx;
  const int64_t nle = w.num_experts / num_ranks;
  e.combine.resize(static_cast<std::size_t>(w.num_tokens) * H);
  std::vector<float> acc(H), partial(H);
  for (int64_t t = 0; t < w.num_tokens; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int r = 0; r < num_ranks; ++r) {
      bool held = false;
      std::fill(partial.begin(), partial.end(), 0.0f);
      for (int k = 0; k < w.num_topk; ++k) {
        const auto slot = static_cast<std::size_t>(t * w.num_topk + k);
        if (idx[slot] < 0 || idx[slot] / nle != r) continue;
        held = true;
        const uint64_t key = y_key(w, num_ranks, idx[slot], me, t, set);
        for (std::size_t c = 0; c < H; ++c)
          partial[c] += weights[slot] * ref::bf16_to_float(y_value(key + c));
      }
      if (held)
        for (std::size_t c = 0; c < H; ++c) acc[c] += partial[c];
    }
    for (std::size_t c = 0; c < H; ++c)
      e.combine[static_cast<std::size_t>(t) * H + c] = ref::float_to_bf16(acc[c]);
  }
  return e;
}

Verdict check_ll_dispatch(const HostLlDispatch& got, const ref::LlRankOutput& want, int R, int64_t cap,
                          int64_t S, int64_t hidden) {
  Verdict v;
  if (got.count != want.recv_count) {
    v.fail("epcomm ll recv_count differs from the reference");
    return v;
  }
  const auto H = static_cast<std::size_t>(hidden);
  const auto nle = static_cast<int>(got.count.size());
  if (got.x.size() != got.count.size() ||
      got.ranges.size() != got.count.size() * static_cast<std::size_t>(R) ||
      got.src.size() != got.count.size() * static_cast<std::size_t>(cap) ||
      got.scales.size() != got.count.size() * static_cast<std::size_t>(S * cap)) {
    v.fail("epcomm ll dispatch outputs are not sized for " + std::to_string(nle) + " experts of " +
           std::to_string(cap) + " rows");
    return v;
  }
  std::vector<uint8_t> x_got, x_ref;  // valid rows, expert after expert, reference row order
  std::vector<float> s_got, s_ref;
  for (int e = 0; e < nle; ++e) {
    const int64_t n = got.count[static_cast<std::size_t>(e)];
    std::vector<int64_t> got_row(static_cast<std::size_t>(n), -1);  // reference row j -> got row
    for (int s_rank = 0; s_rank < R; ++s_rank) {
      const int64_t g = got.ranges[static_cast<std::size_t>(e * R + s_rank)];
      const int64_t r = want.layout_range[static_cast<std::size_t>(e * R + s_rank)];
      const int64_t gb = g >> 32, gc = g & 0xffffffff, rb = r >> 32, rc = r & 0xffffffff;
      const std::string where = "expert " + std::to_string(e) + " source " + std::to_string(s_rank);
      if (gc != rc || gb < 0 || gb + gc > n) {
        v.fail("epcomm ll layout_range of " + where + " is wrong");
        return v;
      }
      std::map<int32_t, std::vector<int64_t>> by_token;  // token -> reference rows
      for (int64_t j = rb; j < rb + rc; ++j)
        by_token[want.src_info[static_cast<std::size_t>(e * cap + j)]].push_back(j);
      for (int64_t i = gb; i < gb + gc; ++i) {
        auto it = by_token.find(got.src[static_cast<std::size_t>(e * cap + i)]);
        if (it == by_token.end() || it->second.empty()) {
          v.fail("epcomm ll src_info of " + where + " row " + std::to_string(i) +
                 " names an unexpected token");
          return v;
        }
        int64_t& slot = got_row[static_cast<std::size_t>(it->second.back())];
        it->second.pop_back();
        if (slot >= 0) {
          v.fail("epcomm ll " + where + ": a token appears twice");
          return v;
        }
        slot = i;
      }
    }
    const std::vector<uint8_t>& rows = got.x[static_cast<std::size_t>(e)];
    if (rows.size() != static_cast<std::size_t>(n) * H) {
      v.fail("epcomm ll recv_x of expert " + std::to_string(e) + ": " + std::to_string(rows.size()) +
             " bytes, the reference has " + std::to_string(static_cast<std::size_t>(n) * H));
      return v;
    }
    for (int64_t j = 0; j < n; ++j) {
      if (got_row[static_cast<std::size_t>(j)] < 0) {
        v.fail("epcomm ll layout_range leaves rows uncovered");
        return v;
      }
      const auto i = static_cast<std::size_t>(got_row[static_cast<std::size_t>(j)]);
      x_got.insert(x_got.end(), rows.begin() + static_cast<std::ptrdiff_t>(i * H),
                   rows.begin() + static_cast<std::ptrdiff_t>((i + 1) * H));
      const auto* want_row = want.recv_x.data() + static_cast<std::size_t>(e * cap + j) * H;
      x_ref.insert(x_ref.end(), want_row, want_row + H);
      for (int64_t k = 0; k < S; ++k) {
        s_got.push_back(got.scales[static_cast<std::size_t>((e * S + k) * cap) + i]);
        s_ref.push_back(want.recv_scales[static_cast<std::size_t>((e * S + k) * cap + j)]);
      }
    }
  }
  v.add(compare_bytes("epcomm ll recv_x (reference row order)", x_ref, x_got));
  v.add(compare_floats_exact("epcomm ll recv_scales (reference row order)", s_ref, s_got));
  return v;
}

}  // namespace epcomm::bench
