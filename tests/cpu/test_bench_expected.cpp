// epcomm-bench's reference results (tools/bench/expected.hpp) agree with the workload's own view:
// received row counts, rows and strided FP8 scales carried unchanged, combine = x times the ranks
// a token reached.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "bench/expected.hpp"
#include "bench/workload.hpp"
#include "epcomm/reference.hpp"

namespace epcomm::bench {
namespace {

Workload small_workload(Routing routing) {
  Workload w;
  w.name = "test-small";
  w.routing = routing;
  w.num_tokens = 40;
  w.hidden = 256;
  w.num_topk = 4;
  w.num_experts = 16;
  return w;
}

class BenchExpected : public ::testing::TestWithParam<Routing> {};

TEST_P(BenchExpected, MatchesInputsAndTraffic) {
  const Workload w = small_workload(GetParam());
  const int num_ranks = 2;
  const int64_t H = w.hidden;
  const int num_scales = static_cast<int>(H / 128);
  std::vector<RankInputs> inputs;
  for (int r = 0; r < num_ranks; ++r) inputs.push_back(make_rank_inputs(w, num_ranks, r));

  for (int rank = 0; rank < num_ranks; ++rank) {
    const ExpectedHt e = compute_expected_ht(w, num_ranks, rank);
    const Traffic tr = compute_traffic(w, num_ranks, rank);
    ASSERT_EQ(e.dispatch_bf16.num_recv_tokens, tr.recv_rows);
    ASSERT_EQ(e.dispatch_fp8.num_recv_tokens, tr.recv_rows);

    // Every received row is its source token's row; FP8 scales come from the column-major input.
    for (int64_t row = 0; row < tr.recv_rows; ++row) {
      const int src = e.dispatch_bf16.route.src_rank[row];
      const int64_t t = e.dispatch_bf16.route.src_token[row];
      ASSERT_EQ(0, std::memcmp(e.dispatch_bf16.recv_x.data() + row * H * 2,
                               inputs[src].bf16.x.data() + t * H * 2, static_cast<size_t>(H * 2)));
      ASSERT_EQ(0, std::memcmp(e.dispatch_fp8.recv_x.data() + row * H, inputs[src].fp8.x.data() + t * H,
                               static_cast<size_t>(H)));
      for (int j = 0; j < num_scales; ++j)
        ASSERT_EQ(e.dispatch_fp8.recv_scales[row * num_scales + j],
                  inputs[src].fp8.scales[j * w.num_tokens + t]);
    }

    // Combine of the rows sent straight back: x times the number of ranks the token reached.
    const auto& topk = inputs[rank].bf16.topk_idx;
    const int num_local = w.num_experts / num_ranks;
    ASSERT_EQ(e.combine_out.size(), static_cast<size_t>(w.num_tokens * H));
    for (int64_t t = 0; t < w.num_tokens; ++t) {
      std::vector<bool> reached(num_ranks, false);
      for (int k = 0; k < w.num_topk; ++k)
        if (topk[t * w.num_topk + k] >= 0) reached[topk[t * w.num_topk + k] / num_local] = true;
      const int n = static_cast<int>(std::count(reached.begin(), reached.end(), true));
      for (int64_t c = 0; c < H; ++c) {
        uint16_t x;
        std::memcpy(&x, inputs[rank].bf16.x.data() + (t * H + c) * 2, 2);
        ASSERT_EQ(e.combine_out[t * H + c], ref::float_to_bf16(ref::bf16_to_float(x) * static_cast<float>(n)))
            << "rank " << rank << " token " << t << " channel " << c;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Routings, BenchExpected, ::testing::Values(Routing::kRandom, Routing::kSkewed));

}  // namespace
}  // namespace epcomm::bench
