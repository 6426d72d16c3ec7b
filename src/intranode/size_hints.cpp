// ht_nvl_bytes_hint: the inverse of the region layouts' capacity (ht_layout.hpp) at the worst case.
#include "epcomm/size_hints.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "core/check.hpp"
#include "core/domain_view.hpp"
#include "intranode/ht_layout.hpp"
#include "intranode/op_checks.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

namespace {

constexpr int kWidestIdxBytes = 8;  // int64 top-k indices

// The data bytes a dispatch region needs for `rows` rows of the widest form this hidden size allows:
// BF16, or FP8 with one float scale per 128 channels where FP8 rows are possible.
std::size_t dispatch_bytes(std::int64_t rows, std::int64_t hidden, int max_topk) {
  std::size_t bytes = HtDispatchLayout::bytes_for_rows(rows, hidden * 2, 0, max_topk, kWidestIdxBytes);
  if (hidden % checks::kFp8ScaleBlock == 0)
    bytes = std::max(bytes, HtDispatchLayout::bytes_for_rows(rows, hidden, static_cast<int>(hidden / checks::kFp8ScaleBlock),
                                                             max_topk, kWidestIdxBytes));
  return bytes;
}

}  // namespace

std::int64_t ht_nvl_bytes_hint(std::int64_t max_tokens_per_rank, std::int64_t hidden, int num_ranks, int max_topk) {
  EPCOMM_CHECK_ARG(max_tokens_per_rank >= 1 && max_tokens_per_rank <= std::numeric_limits<std::int32_t>::max(),
                   "max_tokens_per_rank: expected 1 to ", std::numeric_limits<std::int32_t>::max(), ", got ",
                   max_tokens_per_rank);
  checks::check_hidden(hidden, DType::kBF16, "hidden");
  EPCOMM_CHECK_ARG(num_ranks >= 1 && num_ranks <= kMaxDomainRanks, "num_ranks: expected 1 to ", kMaxDomainRanks,
                   " (the ranks of one NVLink domain), got ", num_ranks);
  EPCOMM_CHECK_ARG(max_topk >= 0 && max_topk <= kHtMaxTopk, "max_topk: expected 0 to ", kHtMaxTopk, ", got ",
                   max_topk);
  // Rank d receives each token of each rank at most once (dispatch deduplicates per rank), and in
  // combine gets back at most as many rows as it sent (push) or stages those it received (pull).
  const std::int64_t rows = max_tokens_per_rank * num_ranks;
  const std::size_t bytes =
      std::max(dispatch_bytes(rows, hidden, max_topk), HtCombineLayout::bytes_for_rows(rows, hidden * 2, max_topk));
  return static_cast<std::int64_t>(align_up(bytes, kRegionAlignment));
}

}  // namespace epcomm
