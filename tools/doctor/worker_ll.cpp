// A doctor worker's low-latency phase: FP8 dispatch and BF16 combine round trips against the CPU
// reference (worker.hpp).
#include "doctor/worker.hpp"
#include "epcomm/buffer.hpp"

namespace epcomm::doctor {

std::string run_ll_phase(const TinyCase& c, int rank, const std::shared_ptr<Bootstrap>& bootstrap,
                         cudaStream_t stream, std::vector<PeerTraffic>& traffic) {
  const std::int64_t T = c.num_tokens, k = c.num_topk, H = c.hidden;
  const std::int64_t nle = c.experts_per_rank, cap = c.num_ranks * T;
  const LowLatencyOptions ll{
      .max_tokens_per_rank = T, .hidden = H, .num_experts = c.num_experts(), .max_topk = c.num_topk};
  Buffer buffer(bootstrap,
                {.num_nvl_bytes = ll_region_bytes_hint(T, H, c.num_ranks, c.num_experts(), c.num_topk),
                 .low_latency_mode = true,
                 .timeout_ms = kWorkerPeerTimeoutMs,
                 .peer_telemetry = true},
                ll);
  const CallOptions on_stream{.stream = stream};
  for (int round = 0; round < kLlRounds; ++round) {
    TinyCase rc = c;
    rc.seed = c.seed * 100 + static_cast<std::uint64_t>(round) + 1;  // new inputs every round
    const std::vector<RankInputs> inputs = make_all_inputs(rc);
    const LlExpected want = expect_ll(rc, inputs);
    const RankInputs& in = inputs[static_cast<std::size_t>(rank)];
    const DeviceTensor x = upload(in.x, DType::kBF16, {T, H});
    const DeviceTensor topk = upload(in.topk_idx, DType::kI64, {T, k});
    const DeviceTensor weights = upload(in.weights, DType::kF32, {T, k});

    const LlDispatchResult d = buffer.low_latency_dispatch(x, topk, {.use_fp8 = true}, on_stream);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
    buffer.check_status();
    LlGot got;
    got.recv_count = download<std::int32_t>(d.recv_count);
    got.layout_range = download<std::int64_t>(d.layout_range);
    got.src_info = download<std::int32_t>(d.src_info);
    got.recv_x = download<std::uint8_t>(d.recv_x);
    got.recv_scales = download<float>(d.recv_scales);
    const std::string where =
        "round " + std::to_string(round + 1) + " of " + std::to_string(kLlRounds) + ": ";
    if (std::string diff = compare_ll_dispatch(rc, got, want.dispatch[static_cast<std::size_t>(rank)]);
        !diff.empty()) {
      return where + "dispatch: " + diff;
    }
    // y in the GPU's own row order (each row the token it came from); the reference's result does
    // not depend on that order.
    const DeviceTensor y =
        upload(echo_y(rc, got.layout_range, got.src_info, inputs), DType::kBF16, {nle, cap, H});
    const LlCombineResult combined = buffer.low_latency_combine(y, topk, weights, d.handle, {}, on_stream);
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
    buffer.check_status();
    if (std::string diff = compare_ll_combine(download<std::uint16_t>(combined.out),
                                              want.out[static_cast<std::size_t>(rank)], H);
        !diff.empty()) {
      return where + "combine: " + diff;
    }
    // NOTE: outputs are double-buffered: round + 2 writes where this round's outputs are; poisoned,
    // a row it forgets to write cannot read as correct. Peers write there only in round + 2, which
    // needs this rank to pass round + 1 first.
    for (const Tensor* t :
         {&d.recv_x, &d.recv_scales, &d.recv_count, &d.layout_range, &d.src_info, &combined.out}) {
      poison(*t, stream);
    }
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  traffic = buffer.peer_telemetry();
  return {};
}

}  // namespace epcomm::doctor
