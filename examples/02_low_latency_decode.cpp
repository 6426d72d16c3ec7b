// Example 2: the low-latency path of decoding, captured once in a CUDA graph and replayed.
//
//   build/tools/epcomm-run -n 2 build/examples/02_low_latency_decode
//
// Every rank dispatches 64 tokens (BF16) to top-4 of 16 experts per rank, lets the "experts" return
// their rows unchanged (the dispatch's output is given straight to combine) and combines. Captured
// in a CUDA graph, the pair replays with new token values each step; combine's output then holds
// each token times the sum of its top-k weights, which every step checks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <epcomm/buffer.hpp>
#include <epcomm/error.hpp>
#include <epcomm/low_latency.hpp>

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
    const std::int64_t T = 64, hidden = 2048;
    const int k = 4, experts = 16 * world;
    const epcomm::LowLatencyOptions ll{
        .max_tokens_per_rank = T, .hidden = hidden, .num_experts = experts, .max_topk = k};
    epcomm::Buffer buffer(bootstrap,
                          {.num_nvl_bytes = epcomm::ll_region_bytes_hint(T, hidden, world, experts, k),
                           .low_latency_mode = true},
                          ll);

    // Routing (distinct experts per token, some slots empty) and weights stay fixed; x changes.
    std::mt19937 rng(4321 + rank);
    std::vector<std::int64_t> topk(static_cast<std::size_t>(T * k));
    std::vector<float> weights(topk.size());
    std::vector<int> pool(static_cast<std::size_t>(experts));
    for (int e = 0; e < experts; ++e) pool[static_cast<std::size_t>(e)] = e;
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::vector<float> weight_sum(static_cast<std::size_t>(T), 0.0f);
    for (std::int64_t t = 0; t < T; ++t) {
      for (int j = 0; j < k; ++j) {
        std::swap(pool[static_cast<std::size_t>(j)], pool[j + rng() % (experts - j)]);
        const bool empty = rng() % 8 == 0;
        const auto slot = static_cast<std::size_t>(t * k + j);
        topk[slot] = empty ? -1 : pool[static_cast<std::size_t>(j)];
        weights[slot] = value(rng);
        if (!empty) weight_sum[static_cast<std::size_t>(t)] += weights[slot];
      }
    }
    std::vector<__nv_bfloat16> x(static_cast<std::size_t>(T * hidden));
    auto x_dev = to_device(x, epcomm::DType::kBF16, T, hidden);
    auto topk_dev = to_device(topk, epcomm::DType::kI64, T, k);
    auto weights_dev = to_device(weights, epcomm::DType::kF32, T, k);

    // Capture one dispatch + combine (no host synchronisation, no allocation inside).
    cudaStream_t stream = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph = nullptr;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const epcomm::LlDispatchResult d =
        buffer.low_latency_dispatch(x_dev, topk_dev, {.use_fp8 = false}, {.stream = stream});
    // The experts: identity. d.recv_x is [experts per rank, R*T, hidden] BF16, the shape combine takes.
    const epcomm::LlCombineResult c =
        buffer.low_latency_combine(d.recv_x, topk_dev, weights_dev, d.handle, {}, {.stream = stream});
    CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec = nullptr;
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));

    // Each step: new token values in x's memory, one replay, a check of combine's output.
    std::size_t bad = 0;
    std::vector<__nv_bfloat16> out(x.size());
    for (int step = 0; step < 10; ++step) {
      for (auto& v : x) v = __float2bfloat16(value(rng));
      CHECK_CUDA(cudaMemcpyAsync(x_dev.data(), x.data(), x.size() * 2, cudaMemcpyHostToDevice, stream));
      CHECK_CUDA(cudaGraphLaunch(exec, stream));
      CHECK_CUDA(cudaMemcpyAsync(out.data(), c.out.data, out.size() * 2, cudaMemcpyDeviceToHost, stream));
      CHECK_CUDA(cudaStreamSynchronize(stream));
      buffer.check_status();
      for (std::int64_t t = 0; t < T; ++t) {
        for (std::int64_t h = 0; h < hidden; ++h) {
          const auto i = static_cast<std::size_t>(t * hidden + h);
          const float want = weight_sum[static_cast<std::size_t>(t)] * __bfloat162float(x[i]);
          bad += std::fabs(__bfloat162float(out[i]) - want) > 1e-2f * std::fabs(want) + 1e-2f;
        }
      }
    }
    std::printf("rank %d: 10 graph replays of dispatch + combine %s\n", rank,
                bad == 0 ? "match x * sum of weights" : "MISMATCH");
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
    CHECK_CUDA(cudaStreamDestroy(stream));
    return bad == 0 ? 0 : 1;
  } catch (const epcomm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
