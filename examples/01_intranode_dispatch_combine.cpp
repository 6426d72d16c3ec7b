// Example 1: high-throughput dispatch and combine on the GPUs of one node.
//
//   build/tools/epcomm-run -n 2 build/examples/01_intranode_dispatch_combine
//
// Every rank routes 1024 random tokens to top-8 of 64 experts per rank, dispatches them, sends the
// received rows straight back through combine, and checks that each token came back multiplied by
// the number of ranks it reached (combine sums one copy per receiving rank).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <epcomm/buffer.hpp>
#include <epcomm/error.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "example_common.hpp"

int main() {
  if (!use_local_gpu()) return 0;
  try {
    std::shared_ptr<epcomm::Bootstrap> bootstrap =
        epcomm::make_tcp_bootstrap(epcomm::tcp_bootstrap_options_from_env());
    const int rank = bootstrap->rank(), world = bootstrap->size();
    const std::int64_t T = 1024, hidden = 4096;
    const int k = 8, experts = 64 * world;
    epcomm::Buffer buffer(bootstrap, {.num_nvl_bytes = std::int64_t{256} << 20});

    // Random routing (distinct experts per token) and random BF16 rows.
    std::mt19937 rng(1234 + rank);
    std::vector<std::int64_t> topk(static_cast<std::size_t>(T * k));
    std::vector<float> weights(topk.size(), 1.0f);
    std::vector<int> pool(static_cast<std::size_t>(experts));
    for (int e = 0; e < experts; ++e) pool[static_cast<std::size_t>(e)] = e;
    for (std::int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < k; ++j) {
        std::swap(pool[static_cast<std::size_t>(j)], pool[j + rng() % (experts - j)]);
        topk[static_cast<std::size_t>(t * k + j)] = pool[static_cast<std::size_t>(j)];
      }
    }
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::vector<__nv_bfloat16> x(static_cast<std::size_t>(T * hidden));
    for (auto& v : x) v = __float2bfloat16(value(rng));

    auto x_dev = to_device(x, epcomm::DType::kBF16, T, hidden);
    auto topk_dev = to_device(topk, epcomm::DType::kI64, T, k);
    auto weights_dev = to_device(weights, epcomm::DType::kF32, T, k);

    const epcomm::DispatchLayout layout = buffer.get_dispatch_layout(topk_dev, experts);
    epcomm::DispatchArgs d;
    d.x = x_dev;
    d.topk_idx = topk_dev;
    d.topk_weights = weights_dev;
    d.num_tokens_per_rank = layout.num_tokens_per_rank;
    d.is_token_in_rank = layout.is_token_in_rank;
    d.num_tokens_per_expert = layout.num_tokens_per_expert;
    const epcomm::DispatchResult r = buffer.dispatch(d);
    std::printf("rank %d received %lld rows\n", rank, static_cast<long long>(r.handle.num_recv_tokens()));

    // The "experts" return their input unchanged; combine sums one copy per receiving rank.
    epcomm::CombineArgs c;
    c.x = r.recv_x;
    c.handle = &r.handle;
    const epcomm::CombineResult combined = buffer.combine(c);
    CHECK_CUDA(cudaDeviceSynchronize());
    buffer.check_status();

    std::vector<__nv_bfloat16> out(x.size());
    std::vector<std::uint8_t> in_rank(static_cast<std::size_t>(T * world));
    CHECK_CUDA(cudaMemcpy(out.data(), combined.x.data(), out.size() * 2, cudaMemcpyDeviceToHost));
    CHECK_CUDA(
        cudaMemcpy(in_rank.data(), layout.is_token_in_rank.data(), in_rank.size(), cudaMemcpyDeviceToHost));
    std::size_t bad = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      int reached = 0;
      for (int q = 0; q < world; ++q) reached += in_rank[static_cast<std::size_t>(t * world + q)];
      for (std::int64_t h = 0; h < hidden; ++h) {
        const float want = reached * __bfloat162float(x[static_cast<std::size_t>(t * hidden + h)]);
        const float got = __bfloat162float(out[static_cast<std::size_t>(t * hidden + h)]);
        bad += std::fabs(got - want) > 1e-2f * std::fabs(want) + 1e-2f;
      }
    }
    std::printf("rank %d: combine(dispatch(x)) %s\n", rank,
                bad == 0 ? "matches x * ranks reached" : "MISMATCH");
    return bad == 0 ? 0 : 1;
  } catch (const epcomm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
