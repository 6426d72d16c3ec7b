// The doctor's end-to-end case: a tiny high-throughput dispatch/combine and low-latency round
// trip on every local GPU, its inputs, what the CPU reference (src/reference) expects of each rank,
// and the comparisons. Plain C++ (no CUDA): tests/cpu/test_doctor_case.cpp shows that never-written
// (poisoned) outputs and single wrong rows fail them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/reference.hpp"

namespace epcomm::doctor {

struct TinyCase {
  int num_ranks = 1;
  std::int64_t num_tokens = 128;  // T, tokens of every rank (also the low-latency bound)
  std::int64_t hidden = 2048;     // BF16 channels, a multiple of 128 (one FP8 scale per 128)
  int experts_per_rank = 8;
  int num_topk = 4;
  std::uint64_t seed = 1;  // the same on every rank: each rank makes every rank's inputs

  int num_experts() const { return experts_per_rank * num_ranks; }
  ref::Geometry geometry() const { return {num_ranks, num_experts(), num_ranks}; }
  // "2 ranks x 128 tokens, hidden 2048, 8 experts per rank, top-4"
  std::string describe() const;
};

// The poison byte of outputs before a run: every dtype of a never-written output reads as a value
// no correct output equals here (BF16 0x7f7f ~ 3.4e38 where inputs lie in [-2, 2]; float32 likewise;
// int32/int64 indices and counts ~ 2^62, beyond any range).
inline constexpr unsigned char kPoisonByte = 0x7f;

struct RankInputs {
  std::vector<std::int64_t> topk_idx;  // [T, k]: distinct experts per token; 1 in 8 slots -1, token 3 none
  std::vector<float> weights;          // [T, k] in [0.05, 1)
  std::vector<std::uint16_t> x;        // [T, hidden] BF16 in [-2, 2]
};
RankInputs make_inputs(const TinyCase& c, int rank_idx);
std::vector<RankInputs> make_all_inputs(const TinyCase& c);

// ---- high-throughput: layout, dispatch (BF16, top-k), combine (x = the received rows, with weights)

struct HtExpected {
  ref::Layout layout;
  ref::HtRankOutput dispatch;
  ref::HtCombineRankOutput combine;
};
// One per rank.
std::vector<HtExpected> expect_ht(const TinyCase& c, const std::vector<RankInputs>& inputs);

struct HtGot {
  std::vector<std::int32_t> num_tokens_per_rank, num_tokens_per_expert;
  std::vector<std::uint8_t> is_token_in_rank;
  std::int64_t num_recv_tokens = 0;
  std::vector<std::uint8_t> recv_x;  // [rows, hidden * 2]
  std::vector<std::int64_t> recv_topk_idx;
  std::vector<float> recv_topk_weights;
  std::vector<int> num_recv_tokens_per_expert;
  std::vector<std::uint16_t> combined_x;  // [T, hidden]
  std::vector<float> combined_weights;    // [T, k]
};
// Layout and dispatch bit-exact, combine within BF16 rounding; empty when all match, else what
// differs first ("recv_x: 4096 of 524288 bytes differ, first at row 3, byte 12").
std::string compare_ht(const HtGot& got, const HtExpected& want);

// ---- low-latency: FP8 dispatch (one scale per 128 channels), BF16 combine ------------------------

struct LlExpected {
  std::vector<ref::LlRankOutput> dispatch;      // [rank]
  std::vector<std::vector<std::uint16_t>> out;  // [rank]: combine's [T, hidden]
};
LlExpected expect_ll(const TinyCase& c, const std::vector<RankInputs>& inputs);

// The expert outputs y of one rank, [nle, R*T, hidden] BF16: each valid row is the BF16 token it
// came from (x of its source rank), so combine's result depends on the routing only, whatever row
// order the GPU chose. layout_range [nle, R] and src_info [nle, R*T] say which row holds what.
std::vector<std::uint16_t> echo_y(const TinyCase& c, const std::vector<std::int64_t>& layout_range,
                                  const std::vector<std::int32_t>& src_info,
                                  const std::vector<RankInputs>& inputs);

struct LlGot {
  std::vector<std::int32_t> recv_count;    // [nle]
  std::vector<std::int64_t> layout_range;  // [nle, R]
  std::vector<std::int32_t> src_info;      // [nle, R*T]
  std::vector<std::uint8_t> recv_x;        // [nle, R*T, hidden] FP8
  std::vector<float> recv_scales;          // physical [nle, hidden/128, R*T]
};
// Counts and ranges exactly; every valid row's bytes and scales bit-exactly against the reference's
// row of the same (expert, source rank, token), whatever the row order. Empty when all match.
std::string compare_ll_dispatch(const TinyCase& c, const LlGot& got, const ref::LlRankOutput& want);
// Within BF16 rounding of a float32 sum; empty when all match.
std::string compare_ll_combine(const std::vector<std::uint16_t>& got, const std::vector<std::uint16_t>& want,
                               std::int64_t hidden);

}  // namespace epcomm::doctor
