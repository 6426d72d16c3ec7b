// The benchmark workloads of docs/benchmark.md and their deterministic per-rank inputs.
//
// Every process can generate the inputs of ANY rank (seed = fixed base + rank), because the data
// check computes the CPU reference of its own rank from all ranks' inputs. The random numbers come
// from std::mt19937_64 through our own uniform/normal transforms, so they do not depend on the
// standard library's distribution implementations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "epcomm/reference.hpp"

namespace epcomm::bench {

enum class Mode { kHighThroughput, kLowLatency };
enum class Routing { kRandom, kSkewed };
enum class Dtype { kBf16, kFp8 };

const char* to_string(Dtype dtype);

struct Workload {
  std::string
      name;  // the docs/benchmark.md name ("ht-dsv3", "ht-skew", "ll-dsv3", "ll-small") or a custom one
  Mode mode = Mode::kHighThroughput;
  Routing routing = Routing::kRandom;
  int64_t num_tokens = 0;  // per rank
  int64_t hidden = 0;      // channels per row; a multiple of ref::kFp8BlockSize
  int num_topk = 0;
  int num_experts = 0;

  int64_t num_scales() const { return hidden / ref::kFp8BlockSize; }
};

// Skewed routing (`ht-skew`): this fraction of tokens has every expert on rank 0 ...
inline constexpr double kSkewPinnedFraction = 0.30;
// ... and this fraction of all top-k slots is -1 (no expert).
inline constexpr double kSkewMaskedFraction = 0.10;
// Top-k weights are drawn uniformly from [kMinTopkWeight, kMaxTopkWeight).
inline constexpr float kMinTopkWeight = 0.05f;
inline constexpr float kMaxTopkWeight = 1.0f;
// The seed of rank r's routing is kRoutingSeedBase + r; of its payload, kPayloadSeedBase + r.
inline constexpr uint64_t kRoutingSeedBase = 0x6570636f6d6d0000ull;
inline constexpr uint64_t kPayloadSeedBase = 0x7061796c6f616400ull;

// Which inputs: the timed calls' or the final checked call's. The checked call's routing and
// payload come from other seeds (base + kCheckSeedOffset + r), so outputs an earlier timed call
// left behind never match the reference of the checked call.
enum class InputSet { kTimed, kCheck };
inline constexpr uint64_t kCheckSeedOffset = uint64_t{1} << 40;  // far above any rank index
uint64_t routing_seed(InputSet set, int rank_idx);
uint64_t payload_seed(InputSet set, int rank_idx);

// The names --workload accepts (besides "all"), in the order "all" runs them.
const std::vector<std::string>& workload_names();
// The variants of one named workload (`ll-small` has one per token count: 1, 8, 32). Throws
// epcomm::Error (invalid argument) listing the known names for an unknown one.
std::vector<Workload> workloads_named(const std::string& name);
// Throws epcomm::Error (invalid argument) when `workload` cannot run on `num_ranks` ranks
// (experts not divisible by ranks, hidden not a multiple of 128, top-k larger than experts...).
void validate(const Workload& workload, int num_ranks);

ref::Geometry geometry_of(const Workload& workload, int num_ranks);

// ---- custom shapes (--tokens --hidden --topk --experts --routing --mode) -------------------------

struct CustomShape {
  int64_t num_tokens = 0;  // per rank
  int64_t hidden = 0;
  int num_topk = 0;
  int num_experts = 0;
  Routing routing = Routing::kRandom;  // "uniform" on the command line; kSkewed is "skew"
  Mode mode = Mode::kHighThroughput;
};

// Bounds of a custom shape. Low-latency mode adds the library's own (epcomm/low_latency.hpp:
// kLlMaxTokensPerRank, kLlMaxHidden, kLlMaxTopk).
inline constexpr int64_t kMaxCustomTokens = int64_t{1} << 20;  // per rank; x alone is then 14 GiB at 7168
inline constexpr int64_t kMaxCustomHidden = 65536;
inline constexpr int kMaxCustomExperts = 65536;

// The workload of a custom shape, named as docs/benchmark.md says: custom-t<T>-h<H>-k<K>-e<E>-<uniform|skew>,
// with "-ll" appended in low-latency mode. Throws epcomm::Error (invalid argument) naming the field
// for a shape no rank count can run (hidden not a multiple of 128, top-k above the experts, a bound
// above); experts divisible by the ranks is checked by validate() once the rank count is known.
Workload make_custom_workload(const CustomShape& shape);

// ---- routing ------------------------------------------------------------------------------------

struct RankRouting {
  std::vector<int64_t> topk_idx;    // [T, k] global expert ids, -1 for an empty slot; distinct per token
  std::vector<float> topk_weights;  // [T, k] positive
};

// Random: scores = |randn| + 1 for every (token, expert), the top-k of them per token (highest score
// first). Skewed: as random, but a pinned token picks its top-k among rank 0's experts only, and
// each slot is then set to -1 with probability kSkewMaskedFraction.
RankRouting make_routing(const Workload& workload, int num_ranks, int rank_idx,
                         InputSet set = InputSet::kTimed);

// ---- payloads -----------------------------------------------------------------------------------

// One rank's inputs in both payload forms (same routing, same values):
//   bf16: x [T, hidden] BF16 (normal values), no scales;
//   fp8:  x [T, hidden] E4M3, quantized from the BF16 values per block of 128 channels
//         (quantize_fp8_blockwise), scales fp32 column-major: [hidden/128, T] physically, i.e.
//         scale (t, j) at scales[j * T + t] (scale_stride_token = 1, scale_stride_block = T).
struct RankInputs {
  ref::HtRankInput bf16;
  ref::HtRankInput fp8;
};

RankInputs make_rank_inputs(const Workload& workload, int num_ranks, int rank_idx,
                            InputSet set = InputSet::kTimed);

// Block-wise E4M3 quantization of BF16 rows x [num_tokens, hidden] with the reference's cast
// (ref::ll_cast_row_fp8: scale = max(amax, 1e-4) / 448): q [num_tokens, hidden]; the scale of
// (t, j) goes to scales[t * stride_token + j * stride_block].
void quantize_fp8_blockwise(const uint16_t* x, int64_t num_tokens, int64_t hidden, uint8_t* q, float* scales,
                            int64_t stride_token, int64_t stride_block);

// ---- traffic ------------------------------------------------------------------------------------

// Row counts of one rank. High-throughput rows travel once per (token, destination rank);
// low-latency rows once per (token, selected expert).
struct Traffic {
  int64_t recv_rows = 0;          // rows this rank receives, its own included
  int64_t recv_rows_remote = 0;   // of them, rows from other ranks
  int64_t send_rows = 0;          // rows this rank sends, to itself included
  int64_t send_rows_remote = 0;   // of them, rows to other ranks
  int64_t recv_pairs = 0;         // (token, expert) pairs selecting this rank's experts
  int64_t recv_pairs_remote = 0;  // of them, from other ranks' tokens
  int64_t send_pairs_remote = 0;  // this rank's (token, expert) pairs on other ranks
};

// routings[r]: rank r's routing (all ranks).
Traffic compute_traffic(const Workload& workload, const std::vector<RankRouting>& routings, int rank_idx);
// Generates every rank's routing (of the timed calls), then counts.
Traffic compute_traffic(const Workload& workload, int num_ranks, int rank_idx);

// Payload bytes of one row: BF16 hidden*2; FP8 hidden + 4*hidden/128 (the scales travel along).
int64_t row_bytes(const Workload& workload, Dtype dtype);

}  // namespace epcomm::bench
