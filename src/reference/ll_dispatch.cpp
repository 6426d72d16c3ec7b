// Low-latency dispatch (SPEC "Low-latency dispatch"): one row per (token, selected expert), in
// per-expert receive slots with room for every possible sender.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

namespace {

using detail::field;
using epcomm::detail::concat;

constexpr int kUe8m0PerWord = 4;  // UE8M0 exponent bytes packed into one int32

void check_inputs(const Geometry& geometry, int64_t hidden, int64_t max_tokens_per_rank,
                  const std::vector<LlRankInput>& inputs, const LlOptions& options) {
  EPCOMM_CHECK_ARG(hidden > 0, "hidden: expected > 0, got ", hidden);
  EPCOMM_CHECK_ARG(!options.use_fp8 || hidden % kFp8BlockSize == 0, "hidden: expected a multiple of ",
                   kFp8BlockSize, " (one FP8 scale per ", kFp8BlockSize, " channels), got ", hidden);
  EPCOMM_CHECK_ARG(!options.use_ue8m0 || options.round_scale,
                   "use_ue8m0: expected round_scale=true with use_ue8m0=true (UE8M0 stores power-of-two "
                   "scales only), got round_scale=false");
  EPCOMM_CHECK_ARG(max_tokens_per_rank > 0, "max_tokens_per_rank: expected > 0, got ", max_tokens_per_rank);
  EPCOMM_CHECK_ARG(static_cast<int64_t>(inputs.size()) == geometry.num_ranks,
                   "inputs: expected one per rank (num_ranks=", geometry.num_ranks, "), got ", inputs.size());
  for (size_t rank_idx = 0; rank_idx < inputs.size(); ++rank_idx) {
    const LlRankInput& in = inputs[rank_idx];
    EPCOMM_CHECK_ARG(in.num_tokens >= 0 && in.num_tokens <= max_tokens_per_rank,
                     field("inputs", rank_idx, "num_tokens"),
                     ": expected in [0, max_tokens_per_rank=", max_tokens_per_rank, "], got ", in.num_tokens);
    detail::check_topk_idx(field("inputs", rank_idx, "topk_idx"), in.topk_idx, in.num_tokens, in.num_topk,
                           geometry.num_experts);
    detail::check_size(field("inputs", rank_idx, "x"), in.x.size(), in.num_tokens * hidden,
                       concat("[num_tokens, hidden] = [", in.num_tokens, ", ", hidden, "]"));
  }
}

// One rank's tokens as they travel: FP8 bytes and per-block scale_inv, or the BF16 bytes.
struct CastTokens {
  std::vector<uint8_t> payload;  // [num_tokens, row_bytes]
  std::vector<float> scale_inv;  // fp8: [num_tokens, hidden/128]
};

CastTokens cast_tokens(const LlRankInput& in, int64_t hidden, const LlOptions& options) {
  CastTokens cast;
  if (options.use_fp8) {
    const int64_t num_blocks = hidden / kFp8BlockSize;
    cast.payload.resize(in.num_tokens * hidden);
    cast.scale_inv.resize(in.num_tokens * num_blocks);
    for (int64_t token_idx = 0; token_idx < in.num_tokens; ++token_idx) {
      ll_cast_row_fp8(in.x.data() + token_idx * hidden, hidden, options,
                      cast.payload.data() + token_idx * hidden,
                      cast.scale_inv.data() + token_idx * num_blocks);
    }
  } else {
    // BF16 rows travel as their bytes, little-endian (the GPU's byte order).
    cast.payload.resize(in.num_tokens * hidden * 2);
    for (size_t i = 0; i < in.x.size(); ++i) {
      cast.payload[2 * i] = static_cast<uint8_t>(in.x[i] & 0xff);
      cast.payload[2 * i + 1] = static_cast<uint8_t>(in.x[i] >> 8);
    }
  }
  return cast;
}

// The widths of one rank's outputs.
struct OutputShape {
  int64_t capacity;    // rows per local expert: R * T
  int64_t row_bytes;   // hidden (FP8) or hidden * 2 (BF16)
  int64_t num_blocks;  // FP8 scales per row: hidden / 128
  int64_t num_words;   // UE8M0 words per row: ceil(num_blocks / 4)
  bool float_scales;   // fp8 && !ue8m0
  bool packed_scales;  // fp8 && ue8m0
};

// Writes token token_idx of `cast` into row `row` of local_expert's receive slots.
void place_row(LlRankOutput& out, const OutputShape& shape, const CastTokens& cast, int64_t local_expert,
               int64_t row, int64_t token_idx) {
  const int64_t slot_row = local_expert * shape.capacity + row;
  const uint8_t* src = cast.payload.data() + token_idx * shape.row_bytes;
  std::copy(src, src + shape.row_bytes, out.recv_x.begin() + slot_row * shape.row_bytes);
  out.src_info[slot_row] = static_cast<int32_t>(token_idx);
  if (!shape.float_scales && !shape.packed_scales) return;
  // Scales are [nle, blocks (or words), capacity]: column-major per expert, as a grouped GEMM's TMA
  // reads them.
  for (int64_t block = 0; block < shape.num_blocks; ++block) {
    const float scale_inv = cast.scale_inv[token_idx * shape.num_blocks + block];
    if (shape.float_scales) {
      out.recv_scales[(local_expert * shape.num_blocks + block) * shape.capacity + row] = scale_inv;
      continue;
    }
    // Byte j (little-endian) of word w is block 4w + j; bytes of missing blocks stay 0.
    const int64_t word_idx = block / kUe8m0PerWord;
    int32_t& word = out.recv_scales_ue8m0[(local_expert * shape.num_words + word_idx) * shape.capacity + row];
    const uint32_t byte = static_cast<uint32_t>(ue8m0_of(scale_inv)) << (8 * (block % kUe8m0PerWord));
    word = static_cast<int32_t>(static_cast<uint32_t>(word) | byte);
  }
}

}  // namespace

std::vector<LlRankOutput> ll_dispatch(const Geometry& geometry, int64_t hidden, int64_t max_tokens_per_rank,
                                      const std::vector<LlRankInput>& inputs, const LlOptions& options) {
  geometry.validate();
  check_inputs(geometry, hidden, max_tokens_per_rank, inputs, options);
  const int num_ranks = geometry.num_ranks;
  const int num_local_experts = geometry.num_local_experts();
  const int64_t num_blocks = hidden / kFp8BlockSize;
  const OutputShape shape{.capacity = num_ranks * max_tokens_per_rank,
                          .row_bytes = options.use_fp8 ? hidden : hidden * 2,
                          .num_blocks = num_blocks,
                          .num_words = (num_blocks + kUe8m0PerWord - 1) / kUe8m0PerWord,
                          .float_scales = options.use_fp8 && !options.use_ue8m0,
                          .packed_scales = options.use_fp8 && options.use_ue8m0};

  std::vector<CastTokens> cast;
  for (const LlRankInput& in : inputs) cast.push_back(cast_tokens(in, hidden, options));

  std::vector<LlRankOutput> outputs(num_ranks);
  for (int dst_rank = 0; dst_rank < num_ranks; ++dst_rank) {
    LlRankOutput& out = outputs[dst_rank];
    out.capacity = shape.capacity;
    // Unused capacity rows: zero payload and scales, src_info -1 (unspecified on the GPU).
    out.recv_x.assign(num_local_experts * shape.capacity * shape.row_bytes, 0);
    if (shape.float_scales)
      out.recv_scales.assign(num_local_experts * shape.num_blocks * shape.capacity, 0.0f);
    if (shape.packed_scales)
      out.recv_scales_ue8m0.assign(num_local_experts * shape.num_words * shape.capacity, 0);
    out.recv_count.assign(num_local_experts, 0);
    out.layout_range.assign(num_local_experts * num_ranks, 0);
    out.src_info.assign(num_local_experts * shape.capacity, -1);

    for (int local_expert = 0; local_expert < num_local_experts; ++local_expert) {
      const int64_t expert_idx = static_cast<int64_t>(dst_rank) * num_local_experts + local_expert;
      int64_t row = 0;  // next free row of this expert
      // Rows grouped by source rank (ascending), then token index, then slot.
      for (int src_rank = 0; src_rank < num_ranks; ++src_rank) {
        const LlRankInput& in = inputs[src_rank];
        const int64_t begin = row;
        for (int64_t token_idx = 0; token_idx < in.num_tokens; ++token_idx) {
          for (int slot = 0; slot < in.num_topk; ++slot) {
            // One row per (token, selected expert): a token naming this expert in two slots gets
            // two rows, in slot order.
            if (in.topk_idx[token_idx * in.num_topk + slot] != expert_idx) continue;
            // NOTE: a source owns max_tokens_per_rank rows of each expert; only an expert named
            // twice in a token's row can exceed them.
            EPCOMM_CHECK_ARG(row - begin < max_tokens_per_rank, field("inputs", src_rank, "topk_idx"),
                             ": expected at most max_tokens_per_rank=", max_tokens_per_rank,
                             " selections of expert ", expert_idx,
                             " (a token naming an expert twice takes two rows), got more");
            place_row(out, shape, cast[src_rank], local_expert, row++, token_idx);
          }
        }
        // (begin << 32) | count; an empty range's begin is where the next source's rows start.
        out.layout_range[local_expert * num_ranks + src_rank] = (begin << 32) | (row - begin);
      }
      out.recv_count[local_expert] = static_cast<int32_t>(row);
    }
  }
  return outputs;
}

}  // namespace epcomm::ref
