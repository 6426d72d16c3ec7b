// Rank masking in the reference (SPEC "Rank masking"): masking is a rewrite of the inputs, after
// which every operation is the unmasked one. The kernels do the same at run time: they skip the
// slots naming a masked rank's experts and never reach the masked rank.
#include <cstdint>
#include <utility>
#include <vector>

#include "epcomm/reference.hpp"
#include "reference/checks.hpp"

namespace epcomm::ref {

namespace {

void check_mask(const Geometry& geometry, const std::vector<uint8_t>& masked) {
  geometry.validate();
  EPCOMM_CHECK_ARG(static_cast<int64_t>(masked.size()) == geometry.num_ranks, "masked: expected ",
                   geometry.num_ranks, " entries (one per rank), got ", masked.size());
}

bool is_masked(const std::vector<uint8_t>& masked, int rank_idx) {
  return masked[static_cast<size_t>(rank_idx)] != 0;
}

// Every input keeps its layout; a masked rank's becomes empty, the others' topk_idx masked.
template <typename Input, typename Empty>
std::vector<Input> mask_inputs(const Geometry& geometry, std::vector<Input> inputs,
                               const std::vector<uint8_t>& masked, Empty empty) {
  check_mask(geometry, masked);
  for (size_t r = 0; r < inputs.size(); ++r) {
    Input& in = inputs[r];
    if (r < masked.size() && is_masked(masked, static_cast<int>(r))) {
      empty(in);
      continue;
    }
    detail::check_topk_idx(detail::field("inputs", r, "topk_idx"), in.topk_idx, in.num_tokens, in.num_topk,
                           geometry.num_experts);
    in.topk_idx = mask_topk(geometry, in.topk_idx, masked);
  }
  return inputs;
}

}  // namespace

std::vector<int64_t> mask_topk(const Geometry& geometry, const std::vector<int64_t>& topk_idx,
                               const std::vector<uint8_t>& masked) {
  check_mask(geometry, masked);
  std::vector<int64_t> out = topk_idx;
  for (int64_t& expert_idx : out) {
    EPCOMM_CHECK_ARG(expert_idx >= -1 && expert_idx < geometry.num_experts,
                     "topk_idx: expected entries in [-1, ", geometry.num_experts, "), got ", expert_idx);
    if (expert_idx >= 0 && is_masked(masked, geometry.rank_of_expert(expert_idx))) expert_idx = -1;
  }
  return out;
}

std::vector<HtRankInput> mask_ranks(const Geometry& geometry, std::vector<HtRankInput> inputs,
                                    const std::vector<uint8_t>& masked) {
  return mask_inputs(geometry, std::move(inputs), masked, [](HtRankInput& in) {
    in.num_tokens = 0;
    in.topk_idx.clear();
    in.topk_weights.clear();
    in.x.clear();
    in.scales.clear();
  });
}

std::vector<LlRankInput> mask_ranks(const Geometry& geometry, std::vector<LlRankInput> inputs,
                                    const std::vector<uint8_t>& masked) {
  return mask_inputs(geometry, std::move(inputs), masked, [](LlRankInput& in) {
    in.num_tokens = 0;
    in.topk_idx.clear();
    in.x.clear();
  });
}

}  // namespace epcomm::ref
