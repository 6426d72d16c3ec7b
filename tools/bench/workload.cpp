#include "bench/workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "bench/require.hpp"
#include "epcomm/low_latency.hpp"

namespace epcomm::bench {

namespace {

// mt19937_64 with fixed transforms: the same seed gives the same numbers with any standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log(u1) is finite
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * 3.14159265358979323846 * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

Workload make(std::string name, Mode mode, Routing routing, int64_t num_tokens, int num_experts) {
  Workload w;
  w.name = std::move(name);
  w.mode = mode;
  w.routing = routing;
  w.num_tokens = num_tokens;
  w.hidden = 7168;
  w.num_topk = 8;
  w.num_experts = num_experts;
  return w;
}

}  // namespace

uint64_t routing_seed(InputSet set, int rank_idx) {
  return kRoutingSeedBase + (set == InputSet::kCheck ? kCheckSeedOffset : 0) +
         static_cast<uint64_t>(rank_idx);
}

uint64_t payload_seed(InputSet set, int rank_idx) {
  return kPayloadSeedBase + (set == InputSet::kCheck ? kCheckSeedOffset : 0) +
         static_cast<uint64_t>(rank_idx);
}

const char* to_string(Dtype dtype) {
  return dtype == Dtype::kBf16 ? "bf16" : "fp8";
}

const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = {"ht-dsv3", "ht-skew", "ll-dsv3", "ll-small"};
  return names;
}

std::vector<Workload> workloads_named(const std::string& name) {
  if (name == "ht-dsv3") return {make(name, Mode::kHighThroughput, Routing::kRandom, 4096, 256)};
  if (name == "ht-skew") return {make(name, Mode::kHighThroughput, Routing::kSkewed, 4096, 256)};
  if (name == "ll-dsv3") return {make(name, Mode::kLowLatency, Routing::kRandom, 128, 288)};
  if (name == "ll-small") {
    std::vector<Workload> variants;
    for (int64_t num_tokens : {1, 8, 32})
      variants.push_back(make(name, Mode::kLowLatency, Routing::kRandom, num_tokens, 288));
    return variants;
  }
  std::string known;
  for (const auto& n : workload_names()) known += (known.empty() ? "" : ", ") + n;
  BENCH_CHECK_ARG(false, "workload: expected one of ", known, " or all; given '", name, "'");
  return {};
}

void validate(const Workload& w, int num_ranks) {
  BENCH_CHECK_ARG(num_ranks >= 1, "num_ranks: expected >= 1, given ", num_ranks);
  BENCH_CHECK_ARG(w.num_tokens >= 1, w.name, ": num_tokens: expected >= 1, given ", w.num_tokens);
  BENCH_CHECK_ARG(w.hidden > 0 && w.hidden % ref::kFp8BlockSize == 0, w.name,
                  ": hidden: expected a positive multiple of ", ref::kFp8BlockSize, ", given ", w.hidden);
  BENCH_CHECK_ARG(w.num_experts % num_ranks == 0, w.name, ": num_experts (", w.num_experts,
                  ") must be divisible by the number of ranks (", num_ranks, ")");
  BENCH_CHECK_ARG(w.num_topk >= 1 && w.num_topk <= w.num_experts, w.name,
                  ": num_topk: expected 1..num_experts (", w.num_experts, "), given ", w.num_topk);
}

Workload make_custom_workload(const CustomShape& shape) {
  const bool ll = shape.mode == Mode::kLowLatency;
  const int64_t max_tokens = ll ? kLlMaxTokensPerRank : kMaxCustomTokens;
  const int64_t max_hidden = ll ? kLlMaxHidden : kMaxCustomHidden;
  const char* mode = ll ? " in low-latency mode" : "";
  BENCH_CHECK_ARG(shape.num_tokens >= 1 && shape.num_tokens <= max_tokens, "--tokens: expected 1..",
                  max_tokens, mode, ", given ", shape.num_tokens);
  // NOTE: both modes move FP8 rows with one fp32 scale per block of 128 channels.
  BENCH_CHECK_ARG(shape.hidden >= ref::kFp8BlockSize && shape.hidden <= max_hidden &&
                      shape.hidden % ref::kFp8BlockSize == 0,
                  "--hidden: expected a multiple of ", ref::kFp8BlockSize, " (one FP8 scale per ",
                  ref::kFp8BlockSize, " channels) in ", ref::kFp8BlockSize, "..", max_hidden, mode,
                  ", given ", shape.hidden);
  BENCH_CHECK_ARG(shape.num_experts >= 1 && shape.num_experts <= kMaxCustomExperts, "--experts: expected 1..",
                  kMaxCustomExperts, ", given ", shape.num_experts);
  const int max_topk = ll ? std::min(kLlMaxTopk, shape.num_experts) : shape.num_experts;
  BENCH_CHECK_ARG(shape.num_topk >= 1 && shape.num_topk <= max_topk, "--topk: expected 1..", max_topk,
                  " (at most --experts",
                  ll ? ", and " + std::to_string(kLlMaxTopk) + " in low-latency mode" : std::string(),
                  "), given ", shape.num_topk);
  Workload w;
  w.name = "custom-t" + std::to_string(shape.num_tokens) + "-h" + std::to_string(shape.hidden) + "-k" +
           std::to_string(shape.num_topk) + "-e" + std::to_string(shape.num_experts) +
           (shape.routing == Routing::kSkewed ? "-skew" : "-uniform") + (ll ? "-ll" : "");
  w.mode = shape.mode;
  w.routing = shape.routing;
  w.num_tokens = shape.num_tokens;
  w.hidden = shape.hidden;
  w.num_topk = shape.num_topk;
  w.num_experts = shape.num_experts;
  return w;
}

ref::Geometry geometry_of(const Workload& w, int num_ranks) {
  ref::Geometry g;
  g.num_ranks = num_ranks;
  g.num_experts = w.num_experts;
  g.ranks_per_domain = num_ranks;  // one NVLink domain
  return g;
}

RankRouting make_routing(const Workload& w, int num_ranks, int rank_idx, InputSet set) {
  validate(w, num_ranks);
  const int num_experts = w.num_experts;
  const int k = w.num_topk;
  const int num_local_experts = num_experts / num_ranks;
  const bool skewed = w.routing == Routing::kSkewed;
  Rng rng(routing_seed(set, rank_idx));

  RankRouting out;
  out.topk_idx.resize(static_cast<size_t>(w.num_tokens) * k);
  out.topk_weights.resize(out.topk_idx.size());
  std::vector<float> scores(num_experts);
  std::vector<int> order(num_experts);
  // Highest score first; ties (practically absent) broken by the lower expert id.
  const auto better = [&](int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };

  for (int64_t token_idx = 0; token_idx < w.num_tokens; ++token_idx) {
    for (auto& s : scores) s = static_cast<float>(std::fabs(rng.normal())) + 1.0f;
    const bool pinned = skewed && rng.bernoulli(kSkewPinnedFraction);
    std::iota(order.begin(), order.end(), 0);
    if (pinned) {
      // Rank 0's experts are [0, num_local_experts): the best of them fill the first slots. Only when
      // rank 0 has fewer than k experts (then all of them are taken) do the best of the others fill
      // the rest, sorted in place right after them.
      const int from_rank0 = std::min(k, num_local_experts);
      std::partial_sort(order.begin(), order.begin() + from_rank0, order.begin() + num_local_experts, better);
      if (from_rank0 < k)
        std::partial_sort(order.begin() + num_local_experts, order.begin() + k, order.end(), better);
    } else {
      std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
    }
    for (int slot = 0; slot < k; ++slot) {
      const size_t i = static_cast<size_t>(token_idx) * k + slot;
      const bool masked = skewed && rng.bernoulli(kSkewMaskedFraction);
      out.topk_idx[i] = masked ? -1 : order[slot];
      out.topk_weights[i] =
          kMinTopkWeight + static_cast<float>(rng.uniform()) * (kMaxTopkWeight - kMinTopkWeight);
    }
  }
  return out;
}

void quantize_fp8_blockwise(const uint16_t* x, int64_t num_tokens, int64_t hidden, uint8_t* q, float* scales,
                            int64_t stride_token, int64_t stride_block) {
  const int64_t num_blocks = hidden / ref::kFp8BlockSize;
  std::vector<float> row_scales(static_cast<size_t>(num_blocks));
  const ref::LlOptions cast;  // plain amax / 448 scales, as epcomm's in-kernel cast computes them
  for (int64_t t = 0; t < num_tokens; ++t) {
    ref::ll_cast_row_fp8(x + t * hidden, hidden, cast, q + t * hidden, row_scales.data());
    for (int64_t b = 0; b < num_blocks; ++b) scales[t * stride_token + b * stride_block] = row_scales[b];
  }
}

RankInputs make_rank_inputs(const Workload& w, int num_ranks, int rank_idx, InputSet set) {
  RankRouting routing = make_routing(w, num_ranks, rank_idx, set);
  const int64_t num_tokens = w.num_tokens;
  const int64_t hidden = w.hidden;

  Rng rng(payload_seed(set, rank_idx));
  std::vector<uint16_t> x(static_cast<size_t>(num_tokens * hidden));
  for (auto& v : x) v = ref::float_to_bf16(static_cast<float>(rng.normal()));

  RankInputs in;
  ref::HtRankInput& bf16 = in.bf16;
  bf16.num_tokens = num_tokens;
  bf16.num_topk = w.num_topk;
  bf16.topk_idx = routing.topk_idx;
  bf16.topk_weights = routing.topk_weights;
  bf16.row_bytes = hidden * 2;
  bf16.x.resize(x.size() * sizeof(uint16_t));
  std::memcpy(bf16.x.data(), x.data(), bf16.x.size());  // little-endian BF16, as on the device

  ref::HtRankInput& fp8 = in.fp8;
  fp8.num_tokens = num_tokens;
  fp8.num_topk = w.num_topk;
  fp8.topk_idx = std::move(routing.topk_idx);
  fp8.topk_weights = std::move(routing.topk_weights);
  fp8.row_bytes = hidden;
  fp8.num_scales = static_cast<int>(w.num_scales());
  fp8.scale_stride_token = 1;  // column-major: [hidden/128, T] physically
  fp8.scale_stride_block = num_tokens;
  fp8.x.resize(static_cast<size_t>(num_tokens * hidden));
  fp8.scales.resize(static_cast<size_t>(num_tokens * fp8.num_scales));
  quantize_fp8_blockwise(x.data(), num_tokens, hidden, fp8.x.data(), fp8.scales.data(),
                         fp8.scale_stride_token, fp8.scale_stride_block);
  return in;
}

Traffic compute_traffic(const Workload& w, const std::vector<RankRouting>& routings, int rank_idx) {
  const int num_ranks = static_cast<int>(routings.size());
  validate(w, num_ranks);
  BENCH_CHECK_ARG(rank_idx >= 0 && rank_idx < num_ranks, "rank_idx: expected 0..", num_ranks - 1, ", given ",
                  rank_idx);
  const int num_local_experts = w.num_experts / num_ranks;
  const int k = w.num_topk;
  Traffic tr;
  std::vector<char> reaches(num_ranks);
  for (int src = 0; src < num_ranks; ++src) {
    const auto& topk_idx = routings[src].topk_idx;
    BENCH_CHECK_ARG(static_cast<int64_t>(topk_idx.size()) == w.num_tokens * k, "routings[", src,
                    "].topk_idx: expected ", w.num_tokens * k, " entries, given ", topk_idx.size());
    for (int64_t t = 0; t < w.num_tokens; ++t) {
      std::fill(reaches.begin(), reaches.end(), 0);
      for (int slot = 0; slot < k; ++slot) {
        const int64_t expert_idx = topk_idx[t * k + slot];
        if (expert_idx < 0) continue;
        const int dst = static_cast<int>(expert_idx / num_local_experts);
        reaches[dst] = 1;
        if (dst == rank_idx) {
          ++tr.recv_pairs;
          if (src != rank_idx) ++tr.recv_pairs_remote;
        } else if (src == rank_idx) {
          ++tr.send_pairs_remote;
        }
      }
      for (int dst = 0; dst < num_ranks; ++dst) {
        if (!reaches[dst]) continue;
        if (dst == rank_idx) {
          ++tr.recv_rows;
          if (src != rank_idx) ++tr.recv_rows_remote;
        }
        if (src == rank_idx) {
          ++tr.send_rows;
          if (dst != rank_idx) ++tr.send_rows_remote;
        }
      }
    }
  }
  return tr;
}

Traffic compute_traffic(const Workload& w, int num_ranks, int rank_idx) {
  std::vector<RankRouting> routings;
  routings.reserve(num_ranks);
  for (int r = 0; r < num_ranks; ++r) routings.push_back(make_routing(w, num_ranks, r));
  return compute_traffic(w, routings, rank_idx);
}

int64_t row_bytes(const Workload& w, Dtype dtype) {
  return dtype == Dtype::kBf16 ? w.hidden * 2
                               : w.hidden + static_cast<int64_t>(sizeof(float)) * w.num_scales();
}

}  // namespace epcomm::bench
