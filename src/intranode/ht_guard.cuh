// The bounds guard that opens every high-throughput data kernel: from the count matrix (the same
// on every rank), each block decides whether every rank's rows fit, so all blocks of all ranks
// agree to go on or to stop before writing anything. Device code only.
#pragma once

#include <cstdint>

#include "core/wait.cuh"

namespace epcomm {

// by_column: the rows rank d receives are sum_s count[s][d] (dispatch); otherwise the rows rank s
// gets back are sum_r count[s][r] (combine). Returns false for every thread when some rank's rows
// exceed `limit`; block 0 reports the first such rank.
__device__ __forceinline__ bool rows_fit(const std::int32_t* count_matrix, int G, std::int64_t limit,
                                         bool by_column, const DomainView& v, OpId op) {
  bool over = false;
  for (int q = threadIdx.x; q < G; q += blockDim.x) {
    std::int64_t rows = 0;
    for (int i = 0; i < G; ++i) rows += by_column ? count_matrix[i * G + q] : count_matrix[q * G + i];
    if (rows > limit) {
      over = true;
      if (blockIdx.x == 0)
        report_failure(v.status, StatusCode::kRegionTooSmall, op, CounterId::kNone, v.rank,
                       v.domain_base_rank + q, limit, rows);
    }
  }
  return !__syncthreads_or(over);
}

}  // namespace epcomm
