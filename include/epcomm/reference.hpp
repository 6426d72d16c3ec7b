// epcomm::ref: the CPU reference of every operation (docs/operations.md). Plain C++, no CUDA, no
// GPU: link epcomm::reference (CMake) to check what an integration of epcomm produced.
//
// All ranks of the expert-parallel group are simulated in one process: functions take one input
// per rank and return one output per rank. This is the oracle of every GPU test and of
// epcomm-bench's data check, so each function implements its rule in the most direct way, not the
// fastest. Bad inputs throw epcomm::Error (kInvalidArgument) naming the field.
//
// Payload rows are raw bytes (the library moves bytes; it does not interpret them), BF16 values
// are their 16-bit patterns, FP8 values their 8-bit E4M3 patterns.
#pragma once

#include <cstdint>
#include <vector>

namespace epcomm::ref {

// ---- numerics -------------------------------------------------------------------------------

float bf16_to_float(uint16_t bits);
// Round to nearest, ties to even (what __float2bfloat16_rn does). Any NaN becomes 0x7fff, CUDA's
// canonical (quiet) NaN. gpu.test_numeric (tests/gpu/test_numeric.cu) compares it with the device
// intrinsic for all 2^32 inputs.
uint16_t float_to_bf16(float value);
float e4m3_to_float(uint8_t bits);
// Round to nearest even with saturation to +-448 (what __nv_cvt_float_to_fp8(v, __NV_SATFINITE,
// __NV_E4M3) does): subnormals down to 2^-9, |v| >= 448 and +-inf give +-448 (0x7e/0xfe), any NaN
// (either sign) gives 0x7f. gpu.test_numeric (tests/gpu/test_numeric.cu) compares it with the
// device intrinsic for all 2^32 inputs.
uint8_t float_to_e4m3(float value);

constexpr int kFp8BlockSize = 128;      // channels that share one FP8 scale
constexpr float kFp8Max = 448.0f;       // largest finite E4M3 value
constexpr float kFp8AmaxFloor = 1e-4f;  // amax is clamped from below to avoid a zero scale

// ---- geometry -------------------------------------------------------------------------------

struct Geometry {
  int num_ranks = 0;         // R
  int num_experts = 0;       // E, E % R == 0
  int ranks_per_domain = 0;  // G, R % G == 0 (G == R for one NVLink domain)

  int num_local_experts() const { return num_experts / num_ranks; }
  int num_domains() const { return num_ranks / ranks_per_domain; }
  int rank_of_expert(int64_t expert_idx) const { return static_cast<int>(expert_idx / num_local_experts()); }
  int domain_of_rank(int rank_idx) const { return rank_idx / ranks_per_domain; }
  // Throws epcomm::Error naming the field when the geometry is inconsistent.
  void validate() const;
};

// ---- layout (get_dispatch_layout) ------------------------------------------------------------

struct Layout {
  std::vector<int32_t> num_tokens_per_rank;    // [R]: a token counts once per rank it reaches
  std::vector<int32_t> num_tokens_per_domain;  // [R/G]: once per domain it reaches
  std::vector<int32_t> num_tokens_per_expert;  // [E]: every selection counts
  std::vector<uint8_t> is_token_in_rank;       // [T, R] row-major, 0 or 1
};

// topk_idx: [num_tokens, num_topk] row-major; -1 means an empty slot. Throws epcomm::Error
// (invalid argument, naming "topk_idx") for an entry outside [-1, E).
Layout get_dispatch_layout(const Geometry& geometry, const std::vector<int64_t>& topk_idx, int64_t num_tokens,
                           int num_topk);

// ---- high-throughput dispatch ----------------------------------------------------------------

struct HtRankInput {
  int64_t num_tokens = 0;
  int num_topk = 0;
  std::vector<int64_t> topk_idx;    // [T, k]: the routing
  std::vector<float> topk_weights;  // [T, k]; may be empty when with_topk is false
  int64_t row_bytes = 0;            // payload bytes per row (hidden*2 for BF16, hidden for FP8)
  std::vector<uint8_t> x;           // [T, row_bytes]
  int num_scales = 0;               // FP8: hidden/128 scales per row; 0 for BF16
  std::vector<float> scales;        // scale (t, j) at scales[t*scale_stride_token + j*scale_stride_block]
  int64_t scale_stride_token = 0;   // in floats; (num_scales, 1) is row-major,
  int64_t scale_stride_block = 0;   // (1, T) is column-major
};

struct HtDispatchOptions {
  int expert_alignment = 1;      // each per-expert count is rounded up to a multiple of this
  int64_t num_worst_tokens = 0;  // > 0: outputs have exactly this many rows (worst-case mode)
  bool with_topk = true;         // produce recv_topk_idx / recv_topk_weights
};

// Where each received row came from; also what combine and a cached dispatch need.
struct HtRoute {
  std::vector<int32_t> src_rank;   // [num_recv]
  std::vector<int32_t> src_token;  // [num_recv]: the token's index on its source rank
};

struct HtRankOutput {
  int64_t num_recv_tokens = 0;         // real received rows
  int64_t num_rows = 0;                // rows of every output: num_worst_tokens if set, else num_recv_tokens
  std::vector<uint8_t> recv_x;         // [num_rows, row_bytes]; padding rows are zero here but
                                       // unspecified on the GPU (tests compare the first num_recv_tokens)
  std::vector<float> recv_scales;      // [num_rows, num_scales] row-major
  std::vector<int64_t> recv_topk_idx;  // [num_rows, k]: local expert id or -1 (all -1 on padding)
  std::vector<float> recv_topk_weights;             // [num_rows, k]: 0 where recv_topk_idx is -1
  std::vector<int32_t> num_recv_tokens_per_expert;  // [E/R], each rounded up to expert_alignment
  HtRoute route;
};

// Rows on rank d are ordered by source rank, then by token index on the source rank. A token is
// sent once to every rank holding at least one of its experts.
std::vector<HtRankOutput> ht_dispatch(const Geometry& geometry, const std::vector<HtRankInput>& inputs,
                                      const HtDispatchOptions& options);

// Cached dispatch: the same routes, new payloads. Returns recv_x per rank ([num_recv, row_bytes]).
std::vector<std::vector<uint8_t>> ht_dispatch_cached(const std::vector<HtRoute>& routes,
                                                     const std::vector<HtRankInput>& inputs);

// ---- high-throughput combine -----------------------------------------------------------------

struct HtCombineRankInput {
  std::vector<uint16_t> x;             // [num_recv, hidden] BF16, rows in dispatch order
  std::vector<float> topk_weights;     // [num_recv, k] or empty
  std::vector<uint16_t> bias0, bias1;  // [T, hidden] BF16 of the *receiving* (original) rank, or empty
};

struct HtCombineRankOutput {
  std::vector<uint16_t> out;        // [T, hidden] BF16
  std::vector<float> topk_weights;  // [T, k] or empty
};

// out[t] = bias0[t] + bias1[t] + sum over ranks r that received t (ascending r) of x_r[row of t],
// accumulated in float32 and rounded to BF16 once. Unweighted. Weight rows are summed likewise.
// num_tokens[s]: tokens of rank s; routes[r]: from the dispatch outputs of rank r.
// inputs[r].x (and topk_weights) may have more rows than routes[r] (the padding of worst-case mode);
// those are ignored. Weight rows are combined when some rank gives topk_weights.
std::vector<HtCombineRankOutput> ht_combine(int64_t hidden, int num_topk,
                                            const std::vector<int64_t>& num_tokens,
                                            const std::vector<HtRoute>& routes,
                                            const std::vector<HtCombineRankInput>& inputs);

// ---- low-latency dispatch --------------------------------------------------------------------

struct LlOptions {
  bool use_fp8 = true;
  bool round_scale = false;  // scale_inv = 2^ceil(log2(amax/448))
  bool use_ue8m0 = false;    // store the 8-bit exponent of scale_inv, four per int32; needs round_scale
};

struct LlRankInput {
  int64_t num_tokens = 0;  // <= max_tokens_per_rank
  int num_topk = 0;
  std::vector<int64_t> topk_idx;  // [num_tokens, k]
  std::vector<uint16_t> x;        // [num_tokens, hidden] BF16
};

// One received row per (token, selected expert). The reference orders each expert's rows by source
// rank, then by token, then by slot; the GPU may use any order that layout_range and src_info
// describe. A token naming the same expert in two slots gets two rows (in slot order); since each
// source owns max_tokens_per_rank rows of each expert, a source whose selections of one expert
// exceed that is rejected. Unused rows: recv_x and scales zero, src_info -1 here (unspecified on
// the GPU); BF16 rows are stored little-endian. An empty range's begin is where the next source's
// rows start (the GPU may differ there).
struct LlRankOutput {
  int64_t capacity = 0;            // R * T rows per local expert
  std::vector<uint8_t> recv_x;     // [nle, capacity, hidden * (fp8 ? 1 : 2)]
  std::vector<float> recv_scales;  // fp8 && !ue8m0: [nle, hidden/128, capacity] (column-major per expert)
  std::vector<int32_t>
      recv_scales_ue8m0;  // ue8m0: [nle, ceil(hidden/512), capacity]; byte j of word w is block 4w+j
  std::vector<int32_t> recv_count;    // [nle]
  std::vector<int64_t> layout_range;  // [nle, R]: (begin << 32) | count of each source's rows
  std::vector<int32_t> src_info;      // [nle, capacity]: token index on its source rank
};

// The FP8 cast of one BF16 row (docs/operations.md, "Low-latency dispatch"): q[hidden],
// scale_inv[hidden/128]. hidden must be a multiple of 128. NOTE: the GPU kernel must perform these exact
// float32 operations (IEEE round-to-nearest; no fast-math division) to match bit for bit. Per block of 128
// channels, with xf = the BF16 value widened to float:
//   amax      = fmaxf(1e-4f, fabsf(xf[0]), fabsf(xf[1]), ...)  (fmaxf, so a NaN element is ignored)
//   scale_inv = amax / 448.0f                                   (correctly rounded division)
//   scale     = 448.0f / amax                                   (correctly rounded division)
//   round_scale: scale_inv = 2^ceil(log2(scale_inv)), taken exactly from the bits of the
//                rounded quotient above (a power of two stays, else the next power of two:
//                exponent field + 1, mantissa 0); scale = 1.0f / scale_inv (exact)
//   q[c]      = float_to_e4m3(xf[c] * scale)                    (one rounded multiplication)
// So q = e4m3(x * scale), not e4m3(x / scale_inv): without round_scale the two can differ by a code.
void ll_cast_row_fp8(const uint16_t* x, int64_t hidden, const LlOptions& options, uint8_t* q,
                     float* scale_inv);
// The UE8M0 byte of a power-of-two scale_inv: its biased 8-bit exponent.
uint8_t ue8m0_of(float scale_inv);

// Throws (invalid argument) for use_ue8m0 without round_scale, use_fp8 with hidden % 128 != 0,
// num_tokens > max_tokens_per_rank, and topk_idx entries outside [-1, E).
std::vector<LlRankOutput> ll_dispatch(const Geometry& geometry, int64_t hidden, int64_t max_tokens_per_rank,
                                      const std::vector<LlRankInput>& inputs, const LlOptions& options);

// ---- low-latency combine ---------------------------------------------------------------------

// y[rank]: [nle, capacity, hidden] BF16 in the layout of dispatch[rank]. Returns out per rank,
// [num_tokens, hidden] BF16: out[t] = sum over k with topk_idx[t,k] >= 0 of topk_weights[t,k] *
// y_{expert}[row of t], float32 accumulation, one BF16 rounding, in this order: for each rank
// holding one of t's experts (ascending), a partial sum of its slots' terms (ascending; each term
// the float product w * y, added from 0), then the partials added from 0 in rank order. The row of t in
// expert e is the one of source rank = this rank in dispatch[rank_of_expert(e)].layout_range whose src_info
// is t; a token naming e in several slots matches its rows to its slots in order. inputs[r].x is not read.
std::vector<std::vector<uint16_t>> ll_combine(const Geometry& geometry, int64_t hidden,
                                              const std::vector<LlRankOutput>& dispatch,
                                              const std::vector<std::vector<uint16_t>>& y,
                                              const std::vector<LlRankInput>& inputs,
                                              const std::vector<std::vector<float>>& topk_weights);

// ---- rank masking (SPEC "Rank masking") -------------------------------------------------------
// masked: [R], nonzero where a rank is masked on every live rank. A masked rank holds no tokens
// and no experts: every slot naming one of its experts behaves as -1. The masked operations'
// results on the live ranks are the unmasked operations' results on the inputs these return; what
// they give a masked rank is unspecified (the GPU leaves its outputs alone). Each throws
// epcomm::Error (invalid argument) naming "masked" when it does not hold R entries, and names the
// input as the operations do when a topk_idx entry is outside [-1, E).

// topk_idx ([num_tokens, num_topk]) with every slot naming an expert of a masked rank set to -1.
std::vector<int64_t> mask_topk(const Geometry& geometry, const std::vector<int64_t>& topk_idx,
                               const std::vector<uint8_t>& masked);
// The inputs of a high-throughput dispatch as masking leaves them: a masked rank's input has no
// tokens, and every other rank's slots naming a masked rank's experts are -1 (their weights stay;
// dispatch zeroes the weights of slots that are not local anyway).
std::vector<HtRankInput> mask_ranks(const Geometry& geometry, std::vector<HtRankInput> inputs,
                                    const std::vector<uint8_t>& masked);
// The same for low-latency dispatch (and so for its combine: pass the masked inputs' topk_idx).
std::vector<LlRankInput> mask_ranks(const Geometry& geometry, std::vector<LlRankInput> inputs,
                                    const std::vector<uint8_t>& masked);
}  // namespace epcomm::ref
