// A doctor worker's high-throughput phase: layout, BF16 dispatch with top-k, combine with weights,
// every output against the CPU reference (worker.hpp).
#include "doctor/worker.hpp"
#include "epcomm/buffer.hpp"

namespace epcomm::doctor {
namespace {

constexpr std::int64_t kHtRegionBytes = std::int64_t{64} << 20;  // >> R * T rows of hidden * 2 bytes

class PoisoningAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, cudaStream_t stream) override {
    void* ptr = default_allocator()->allocate(bytes, stream);
    EPCOMM_CUDA_CHECK(cudaMemsetAsync(ptr, kPoisonByte, bytes, stream));
    return ptr;
  }
  void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept override {
    default_allocator()->deallocate(ptr, bytes, stream);
  }
};

}  // namespace

std::shared_ptr<Allocator> poisoning_allocator() {
  return std::make_shared<PoisoningAllocator>();
}

void poison(const Tensor& t, cudaStream_t stream) {
  if (t.defined() && t.nbytes() > 0)
    EPCOMM_CUDA_CHECK(cudaMemsetAsync(t.data, kPoisonByte, t.nbytes(), stream));
}

std::string run_ht_phase(const TinyCase& c, int rank, const std::shared_ptr<Bootstrap>& bootstrap,
                         cudaStream_t stream, std::int64_t& rows_received,
                         std::vector<PeerTraffic>& traffic) {
  const std::vector<RankInputs> inputs = make_all_inputs(c);
  const HtExpected want = expect_ht(c, inputs)[static_cast<std::size_t>(rank)];
  const RankInputs& in = inputs[static_cast<std::size_t>(rank)];
  const std::int64_t T = c.num_tokens, k = c.num_topk;
  const DeviceTensor x = upload(in.x, DType::kBF16, {T, c.hidden});
  const DeviceTensor topk = upload(in.topk_idx, DType::kI64, {T, k});
  const DeviceTensor weights = upload(in.weights, DType::kF32, {T, k});

  Buffer buffer(bootstrap, {.num_nvl_bytes = kHtRegionBytes,
                            .timeout_ms = kWorkerPeerTimeoutMs,
                            .allocator = poisoning_allocator(),
                            .peer_telemetry = true});
  const CallOptions on_stream{.stream = stream};
  const DispatchLayout layout = buffer.get_dispatch_layout(topk, c.num_experts(), on_stream);
  DispatchArgs d;
  d.x = x;
  d.topk_idx = topk;
  d.topk_weights = weights;
  d.num_tokens_per_rank = layout.num_tokens_per_rank;
  d.is_token_in_rank = layout.is_token_in_rank;
  d.num_tokens_per_expert = layout.num_tokens_per_expert;
  const DispatchResult r = buffer.dispatch(d, on_stream);
  CombineArgs back;
  back.x = r.recv_x;  // the experts return their input: combine sums one copy per receiving rank
  back.topk_weights = r.recv_topk_weights;
  back.handle = &r.handle;
  const CombineResult combined = buffer.combine(back, on_stream);
  EPCOMM_CUDA_CHECK(cudaStreamSynchronize(stream));
  buffer.check_status();

  HtGot got;
  got.num_tokens_per_rank = download<std::int32_t>(layout.num_tokens_per_rank);
  got.num_tokens_per_expert = download<std::int32_t>(layout.num_tokens_per_expert);
  got.is_token_in_rank = download<std::uint8_t>(layout.is_token_in_rank);
  got.num_recv_tokens = r.handle.num_recv_tokens();
  got.recv_x = download<std::uint8_t>(r.recv_x);
  got.recv_topk_idx = download<std::int64_t>(r.recv_topk_idx);
  got.recv_topk_weights = download<float>(r.recv_topk_weights);
  got.num_recv_tokens_per_expert = r.num_recv_tokens_per_expert;
  got.combined_x = download<std::uint16_t>(combined.x);
  got.combined_weights = download<float>(combined.topk_weights);
  rows_received = got.num_recv_tokens;
  traffic = buffer.peer_telemetry();
  return compare_ht(got, want);
}

}  // namespace epcomm::doctor
