#include "ht_inputs.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "harness.hpp"

namespace epcomm::test {

std::vector<std::uint16_t> random_bf16(std::uint64_t seed, std::size_t count) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::uint16_t> v(count);
  for (auto& x : v) x = ref::float_to_bf16(normal(rng));
  return v;
}

ref::HtRankInput make_ht_input(const HtCase& c, int rank, int num_ranks, std::uint64_t salt) {
  const std::uint64_t seed = seed_for(c.seed * 7919 + salt, rank);
  std::mt19937_64 rng(seed);
  ref::HtRankInput in;
  const std::int64_t T = c.tokens_of(rank);
  const int E = c.experts_per_rank * num_ranks;
  in.num_tokens = T;
  in.num_topk = c.num_topk;
  // Routing does not depend on the salt: a cached dispatch re-sends new payloads on old routes.
  in.topk_idx = random_topk(seed_for(c.seed, rank), T, c.num_topk, E, c.empty_fraction);
  if (c.skew) {
    // 30% of tokens send all their (non-empty) slots to distinct experts of rank 0.
    std::mt19937_64 srng(seed_for(c.seed + 17, rank));
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::vector<int> pool(static_cast<std::size_t>(c.experts_per_rank));
    std::iota(pool.begin(), pool.end(), 0);
    for (std::int64_t t = 0; t < T; ++t) {
      if (coin(srng) >= 0.3) continue;
      for (int j = 0; j < c.num_topk && j < c.experts_per_rank; ++j) {
        std::uniform_int_distribution<int> pick(j, c.experts_per_rank - 1);
        std::swap(pool[static_cast<std::size_t>(j)], pool[static_cast<std::size_t>(pick(srng))]);
        std::int64_t& slot = in.topk_idx[static_cast<std::size_t>(t * c.num_topk + j)];
        if (slot != -1) slot = pool[static_cast<std::size_t>(j)];
      }
    }
  }
  if (T > 3) std::fill_n(in.topk_idx.begin() + 3 * c.num_topk, c.num_topk, -1);  // routed nowhere

  std::uniform_real_distribution<float> weight(0.05f, 1.0f);
  in.topk_weights.resize(in.topk_idx.size());
  for (auto& w : in.topk_weights) w = weight(rng);

  if (c.fp8) {
    in.row_bytes = c.hidden;
    in.x.resize(static_cast<std::size_t>(T * c.hidden));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : in.x) {
      int v;
      do v = byte(rng);
      while ((v & 0x7f) == 0x7f);  // no NaN codes
      b = static_cast<std::uint8_t>(v);
    }
    in.num_scales = static_cast<int>(c.hidden / 128);
    in.scales.resize(static_cast<std::size_t>(T * in.num_scales));
    std::uniform_real_distribution<float> scale(1e-3f, 2.0f);
    for (auto& s : in.scales) s = scale(rng);
    if (c.col_major_scales) {
      in.scale_stride_token = 1;
      in.scale_stride_block = T;
    } else {
      in.scale_stride_token = in.num_scales;
      in.scale_stride_block = 1;
    }
  } else {
    in.row_bytes = c.hidden * 2;
    const std::vector<std::uint16_t> x = random_bf16(seed + 1, static_cast<std::size_t>(T * c.hidden));
    in.x.resize(x.size() * 2);
    std::memcpy(in.x.data(), x.data(), in.x.size());
  }
  return in;
}

}  // namespace epcomm::test
