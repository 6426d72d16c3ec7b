#include "faults/rank_session.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "epcomm/error.hpp"
#include "epcomm/multi_domain.hpp"

namespace epcomm::faults {

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error(ErrorCategory::kCuda, std::string(what) + ": " + cudaGetErrorString(status), __FILE__,
                __LINE__);
}

namespace {

template <typename T>
DeviceTensor upload(const std::vector<T>& host, DType dtype, std::initializer_list<std::int64_t> shape) {
  DeviceTensor t = DeviceTensor::empty(default_allocator(), dtype, shape, nullptr);
  cuda_check(cudaMemcpy(t.data(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return t;
}

// Distinct experts per token, drawn from all ranks' experts; every value a plain BF16 in [-1, 1).
std::vector<std::int64_t> routing(std::mt19937_64& rng, std::int64_t tokens, int k, int num_experts) {
  std::vector<std::int64_t> topk(static_cast<std::size_t>(tokens * k));
  std::vector<std::int64_t> experts(static_cast<std::size_t>(num_experts));
  for (int e = 0; e < num_experts; ++e) experts[static_cast<std::size_t>(e)] = e;
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::shuffle(experts.begin(), experts.end(), rng);
    std::copy_n(experts.begin(), k, topk.begin() + t * k);
  }
  return topk;
}

}  // namespace

struct Session::Inputs {
  Shape shape;
  bool ll = false;
  DeviceTensor x, topk, weights;
};

Session::Session(std::shared_ptr<Bootstrap> bootstrap, int rank, int world, std::int64_t timeout_ms,
                 cudaStream_t stream, int ranks_per_domain)
    : bootstrap_(std::move(bootstrap)),
      rank_(rank),
      world_(world),
      timeout_ms_(timeout_ms),
      ranks_per_domain_(ranks_per_domain),
      stream_(stream) {}

namespace {

// The symmetric region of a multi-domain Buffer, for the largest of a case's shapes: a mismatch
// doubles hidden or the worst-case tokens on the peer, and both ranks make the same Buffer.
std::int64_t md_rdma_bytes(int world, int ranks_per_domain) {
  const Shape s;
  const MultiDomainShape md{.num_tokens = 2 * s.tokens,
                            .hidden = 2 * s.hidden,
                            .num_topk = s.num_topk,
                            .num_experts = s.experts_per_rank * world,
                            .num_ranks = world,
                            .ranks_per_domain = ranks_per_domain};
  return multi_domain_rdma_bytes_hint(md, s.num_sms);
}

}  // namespace

void Session::create_ht(bool mask_on_timeout) {
  buffer_ = std::make_unique<Buffer>(
      bootstrap_, BufferOptions{.num_nvl_bytes = std::int64_t{1} << 28,
                                .num_rdma_bytes = multi_domain() ? md_rdma_bytes(world_, ranks_per_domain_) : 0,
                                .ranks_per_domain = ranks_per_domain_,
                                .timeout_ms = timeout_ms_,
                                .mask_on_timeout = mask_on_timeout});
}

void Session::create_ll(const Shape& shape, bool mask_on_timeout) {
  const LowLatencyOptions o{.max_tokens_per_rank = shape.tokens,
                            .hidden = shape.ll_hidden,
                            .num_experts = shape.experts_per_rank * world_,
                            .max_topk = shape.num_topk};
  // Across domains the workspace is NVSHMEM's symmetric memory: the NVLink region gets none.
  const BufferOptions b{.num_nvl_bytes = multi_domain() ? 0
                                                      : ll_region_bytes_hint(o.max_tokens_per_rank, o.hidden,
                                                                             world_, o.num_experts, o.max_topk),
                        .ranks_per_domain = ranks_per_domain_,
                        .low_latency_mode = true,
                        .timeout_ms = timeout_ms_,
                        .mask_on_timeout = mask_on_timeout};
  buffer_ = std::make_unique<Buffer>(bootstrap_, b, o);
}

void Session::destroy() {
  dispatched_.reset();
  ll_dispatched_.reset();
  layout_.reset();
  buffer_.reset();
}

void Session::finish() {
  cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  buffer_->check_status();
}

const Session::Inputs& Session::inputs(const Shape& shape, bool ll) {
  const bool same = inputs_ && inputs_->ll == ll && inputs_->shape.tokens == shape.tokens &&
                    inputs_->shape.hidden == shape.hidden && inputs_->shape.ll_hidden == shape.ll_hidden &&
                    inputs_->shape.num_topk == shape.num_topk;
  if (same) return *inputs_;
  auto in = std::make_shared<Inputs>();
  in->shape = shape;
  in->ll = ll;
  // The same seed on every call: a mismatch case changes a shape, never the values' source.
  std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(rank_));
  const std::int64_t T = shape.tokens, H = ll ? shape.ll_hidden : shape.hidden;
  std::uniform_int_distribution<int> value(-64, 63);
  std::vector<std::uint16_t> x(static_cast<std::size_t>(T * H));
  for (auto& v : x) v = static_cast<std::uint16_t>(0x3c00 + value(rng));  // BF16 near 2^-7 .. 2^-6: finite
  in->x = upload(x, DType::kBF16, {T, H});
  in->topk = upload(routing(rng, T, shape.num_topk, shape.experts_per_rank * world_), DType::kI64,
                    {T, shape.num_topk});
  in->weights = upload(std::vector<float>(static_cast<std::size_t>(T * shape.num_topk), 0.25f), DType::kF32,
                       {T, shape.num_topk});
  inputs_ = in;
  return *inputs_;
}

void Session::layout(const Shape& shape) {
  const Inputs& in = inputs(shape, false);
  layout_ = std::make_shared<DispatchLayout>(
      buffer_->get_dispatch_layout(in.topk, shape.experts_per_rank * world_, {.stream = stream_}));
  layout_of_ = inputs_;
  finish();
}

void Session::dispatch(const Shape& shape, bool synchronise) {
  const Inputs& in = inputs(shape, false);
  if (layout_of_ != inputs_) layout(shape);  // the routing changed (a mismatch case's top-k)
  DispatchArgs a;
  a.x = in.x;
  a.topk_idx = in.topk;
  a.topk_weights = in.weights;
  a.num_tokens_per_rank = layout_->num_tokens_per_rank;
  a.is_token_in_rank = layout_->is_token_in_rank;
  a.num_tokens_per_expert = layout_->num_tokens_per_expert;
  a.num_worst_tokens = shape.num_worst_tokens;
  a.config.num_sms = shape.num_sms;
  dispatched_ = std::make_shared<DispatchResult>(buffer_->dispatch(a, {.stream = stream_}));
  if (synchronise) finish();
}

void Session::combine(const Shape& shape) {
  const DispatchResult& d = *dispatched_;
  DeviceTensor y = d.recv_x;
  if (shape.hidden != d.recv_x.size(1))  // a mismatch case: rows of another width
    y = DeviceTensor::empty(default_allocator(), DType::kBF16, {d.recv_x.size(0), shape.hidden}, stream_);
  CombineArgs a;
  a.x = y;
  a.topk_weights = d.recv_topk_weights;
  a.handle = &d.handle;
  a.config.num_sms = shape.num_sms;
  buffer_->combine(a, {.stream = stream_});
  finish();
}

void Session::cached_dispatch(const Shape& shape) {
  const Inputs& in = inputs(shape, false);
  DispatchArgs a;
  a.x = in.x;
  a.handle = &dispatched_->handle;
  a.config.num_sms = shape.num_sms;
  buffer_->dispatch(a, {.stream = stream_});
  finish();
}

void Session::barrier() {
  buffer_->barrier({.stream = stream_});
  finish();
}

void Session::ll_dispatch(const Shape& shape) {
  const Inputs& in = inputs(shape, true);
  ll_dispatched_ = std::make_shared<LlDispatchResult>(
      buffer_->low_latency_dispatch(in.x, in.topk, {.use_fp8 = false}, {.stream = stream_}));
  finish();
}

void Session::ll_send(const Shape& shape) {
  const Inputs& in = inputs(shape, true);
  ll_dispatched_ = std::make_shared<LlDispatchResult>(buffer_->low_latency_dispatch(
      in.x, in.topk, {.use_fp8 = false, .return_recv_hook = true}, {.stream = stream_}));
}

void Session::ll_receive() {
  ll_dispatched_->receive();
  finish();
}

void Session::ll_combine(const Shape& shape, bool zero_copy) {
  const Inputs& in = inputs(shape, true);
  const LlDispatchResult& d = *ll_dispatched_;
  Tensor y = d.recv_x;
  if (zero_copy) {
    y = buffer_->get_next_low_latency_combine_buffer(d.handle);
    cuda_check(cudaMemcpyAsync(y.data, d.recv_x.data, d.recv_x.nbytes(), cudaMemcpyDeviceToDevice, stream_),
               "cudaMemcpyAsync");
  }
  buffer_->low_latency_combine(y, in.topk, in.weights, d.handle, {.zero_copy = zero_copy},
                               {.stream = stream_});
  finish();
}

}  // namespace epcomm::faults
