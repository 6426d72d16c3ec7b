#include "bench/nccl_baseline.hpp"

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include "bench/compare.hpp"
#include "bench/cuda.hpp"
#include "bench/ht_check.hpp"
#include "bench/nccl_baseline_kernels.cuh"
#include "bench/poison_device.hpp"

namespace epcomm::bench {

namespace {

constexpr std::size_t kI32 = sizeof(int32_t);

}  // namespace

NcclBaseline::NcclBaseline(NcclComm& comm, const Workload& workload, const DeviceInputs& inputs)
    : comm_(comm),
      inputs_(inputs),
      num_ranks_(comm.size()),
      num_local_experts_(workload.num_experts / comm.size()),
      num_tokens_(workload.num_tokens),
      hidden_(workload.hidden) {
  validate(workload, num_ranks_);
  BENCH_CHECK_ARG(inputs.num_tokens == num_tokens_ && inputs.hidden == hidden_, "inputs: expected [",
                  num_tokens_, ", ", hidden_, "], given [", inputs.num_tokens, ", ", inputs.hidden, "]");
  const auto R = static_cast<std::size_t>(num_ranks_);
  const auto T = static_cast<std::size_t>(num_tokens_);
  mask_ = DeviceBuffer(R * T * kI32);
  offsets_ = DeviceBuffer(R * T * kI32);
  send_pos_ = DeviceBuffer(T * R * kI32);
  src_token_ = DeviceBuffer(R * T * kI32);
  counts_ = DeviceBuffer(2 * R * kI32);
  host_counts_ = PinnedHostBuffer(2 * R * kI32);
  exclusive_scan(nullptr, scan_temp_bytes_, nullptr, nullptr, static_cast<int64_t>(R * T), nullptr);
  scan_temp_ = DeviceBuffer(scan_temp_bytes_);

  for (const Dtype dtype : {Dtype::kBf16, Dtype::kFp8}) {
    Rows& r = rows(dtype);
    r.row_bytes = row_bytes(workload, dtype);
    r.send = DeviceBuffer(R * T * static_cast<std::size_t>(r.row_bytes));
    r.recv = DeviceBuffer(R * T * static_cast<std::size_t>(r.row_bytes));
  }
  back_ = DeviceBuffer(R * T * static_cast<std::size_t>(hidden_) * 2);
  out_ = DeviceBuffer(T * static_cast<std::size_t>(hidden_) * 2);
  send_offsets_.assign(R + 1, 0);
  recv_offsets_.assign(R + 1, 0);
}

void NcclBaseline::route(cudaStream_t stream) {
  RouteArgs route;
  route.topk_idx = inputs_.live.topk_idx.as<int64_t>();
  route.num_tokens = num_tokens_;
  route.num_topk = inputs_.num_topk;
  route.num_local_experts = num_local_experts_;
  route.num_ranks = num_ranks_;
  route.mask = mask_.as<int32_t>();
  launch_route(route, stream);

  exclusive_scan(scan_temp_.get(), scan_temp_bytes_, mask_.as<int32_t>(), offsets_.as<int32_t>(),
                 num_tokens_ * num_ranks_, stream);

  PositionArgs pos;
  pos.mask = mask_.as<int32_t>();
  pos.offsets = offsets_.as<int32_t>();
  pos.num_tokens = num_tokens_;
  pos.num_ranks = num_ranks_;
  pos.send_pos = send_pos_.as<int32_t>();
  pos.src_token = src_token_.as<int32_t>();
  pos.send_counts = counts_.as<int32_t>();
  launch_positions(pos, stream);
}

void NcclBaseline::exchange_counts(cudaStream_t stream) {
  int32_t* send_counts = counts_.as<int32_t>();
  int32_t* recv_counts = send_counts + num_ranks_;
  BENCH_NCCL(ncclGroupStart());
  for (int peer = 0; peer < num_ranks_; ++peer) {
    BENCH_NCCL(ncclSend(send_counts + peer, 1, ncclInt32, peer, comm_.get(), stream));
    BENCH_NCCL(ncclRecv(recv_counts + peer, 1, ncclInt32, peer, comm_.get(), stream));
  }
  BENCH_NCCL(ncclGroupEnd());
  // NOTE: the baseline's host synchronisation (Megatron's alltoall dispatcher does the same).
  BENCH_CUDA(
      cudaMemcpyAsync(host_counts_.host(), counts_.get(), counts_.bytes(), cudaMemcpyDeviceToHost, stream));
  BENCH_CUDA(cudaStreamSynchronize(stream));

  const int32_t* host = static_cast<const int32_t*>(host_counts_.host());
  send_counts_.assign(host, host + num_ranks_);
  recv_counts_.assign(host + num_ranks_, host + 2 * num_ranks_);
  for (int peer = 0; peer < num_ranks_; ++peer) {
    send_offsets_[peer + 1] = send_offsets_[peer] + send_counts_[peer];
    recv_offsets_[peer + 1] = recv_offsets_[peer] + recv_counts_[peer];
  }
  BENCH_REQUIRE(
      send_offsets_.back() <= num_tokens_ * num_ranks_ && recv_offsets_.back() <= num_tokens_ * num_ranks_,
      ErrorCategory::kInternal, "baseline counts exceed the worst case: send ", send_offsets_.back(),
      ", receive ", recv_offsets_.back(), ", capacity ", num_tokens_ * num_ranks_);
}

void NcclBaseline::all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                                const std::vector<int64_t>& send_offsets, void* recv,
                                const std::vector<int64_t>& recv_counts,
                                const std::vector<int64_t>& recv_offsets, int64_t row_bytes,
                                cudaStream_t stream) {
  const auto* src = static_cast<const uint8_t*>(send);
  auto* dst = static_cast<uint8_t*>(recv);
  BENCH_NCCL(ncclGroupStart());
  for (int peer = 0; peer < num_ranks_; ++peer) {
    if (send_counts[peer] > 0)
      BENCH_NCCL(ncclSend(src + send_offsets[peer] * row_bytes,
                          static_cast<std::size_t>(send_counts[peer] * row_bytes), ncclUint8, peer,
                          comm_.get(), stream));
    if (recv_counts[peer] > 0)
      BENCH_NCCL(ncclRecv(dst + recv_offsets[peer] * row_bytes,
                          static_cast<std::size_t>(recv_counts[peer] * row_bytes), ncclUint8, peer,
                          comm_.get(), stream));
  }
  BENCH_NCCL(ncclGroupEnd());
}

void NcclBaseline::dispatch(Dtype dtype, cudaStream_t stream) {
  Rows& r = rows(dtype);
  route(stream);
  exchange_counts(stream);

  GatherArgs gather;
  const bool fp8 = dtype == Dtype::kFp8;
  gather.x = fp8 ? inputs_.live.x_fp8.as<uint8_t>() : inputs_.live.x_bf16.as<uint8_t>();
  gather.payload_bytes = fp8 ? hidden_ : hidden_ * 2;
  gather.scales = fp8 ? inputs_.live.scales.as<float>() : nullptr;
  gather.num_scales = fp8 ? inputs_.num_scales : 0;
  gather.scale_stride_token = inputs_.scale_stride_token;
  gather.scale_stride_block = inputs_.scale_stride_block;
  gather.src_token = src_token_.as<int32_t>();
  gather.num_rows = send_offsets_.back();
  gather.send = r.send.as<uint8_t>();
  gather.send_row_bytes = r.row_bytes;
  launch_gather(gather, stream);

  all_to_all_v(r.send.get(), send_counts_, send_offsets_, r.recv.get(), recv_counts_, recv_offsets_,
               r.row_bytes, stream);
  r.dispatched = true;
}

void NcclBaseline::exchange_rows(Dtype dtype, cudaStream_t stream) {
  Rows& r = rows(dtype);
  BENCH_REQUIRE(r.dispatched, ErrorCategory::kInternal, "exchange_rows(", to_string(dtype),
                ") before any dispatch of that dtype");
  all_to_all_v(r.send.get(), send_counts_, send_offsets_, r.recv.get(), recv_counts_, recv_offsets_,
               r.row_bytes, stream);
}

void NcclBaseline::combine(cudaStream_t stream) {
  BENCH_REQUIRE(bf16_.dispatched, ErrorCategory::kInternal, "combine before any BF16 dispatch");
  // The received rows go back to where they came from; they land in send-buffer order.
  all_to_all_v(bf16_.recv.get(), recv_counts_, recv_offsets_, back_.get(), send_counts_, send_offsets_,
               bf16_.row_bytes, stream);
  CombineArgs args;
  args.back = back_.as<uint16_t>();
  args.send_pos = send_pos_.as<int32_t>();
  args.num_tokens = num_tokens_;
  args.hidden = hidden_;
  args.num_ranks = num_ranks_;
  args.out = out_.as<uint16_t>();
  launch_combine(args, stream);
}

void NcclBaseline::poison_dispatch_outputs(Dtype dtype, cudaStream_t stream) {
  const Rows& r = rows(dtype);
  poison_bytes(r.recv.get(), r.recv.bytes(), stream);
}

void NcclBaseline::poison_combine_outputs(cudaStream_t stream) {
  poison_bytes(back_.get(), back_.bytes(), stream);
  poison_bytes(out_.get(), out_.bytes(), stream);
}

bool NcclBaseline::check_dispatch(Dtype dtype, const ExpectedHt& expected) const {
  const Rows& r = rows(dtype);
  const bool fp8 = dtype == Dtype::kFp8;
  const ref::HtRankOutput& e = fp8 ? expected.dispatch_fp8 : expected.dispatch_bf16;
  const int64_t num_rows = r.dispatched ? total_recv_rows() : 0;
  std::vector<uint8_t> got(static_cast<std::size_t>(num_rows * r.row_bytes));
  if (!got.empty()) BENCH_CUDA(cudaMemcpy(got.data(), r.recv.get(), got.size(), cudaMemcpyDeviceToHost));

  // BF16 rows are recv_x rows; FP8 rows [hidden payload bytes | num_scales fp32] are split into
  // recv_x and the row-major recv_x_scales.
  HtDispatchOutputs out;
  out.num_recv_tokens = num_rows;
  if (!fp8) {
    out.recv_x = std::move(got);
  } else {
    const auto payload = static_cast<std::size_t>(hidden_);
    const auto num_scales = static_cast<std::size_t>(inputs_.num_scales);
    out.recv_x.resize(static_cast<std::size_t>(num_rows) * payload);
    out.recv_x_scales.resize(static_cast<std::size_t>(num_rows) * num_scales);
    for (std::size_t row = 0; row < static_cast<std::size_t>(num_rows); ++row) {
      const uint8_t* src = got.data() + row * static_cast<std::size_t>(r.row_bytes);
      std::memcpy(out.recv_x.data() + row * payload, src, payload);
      std::memcpy(out.recv_x_scales.data() + row * num_scales, src + payload, num_scales * sizeof(float));
    }
  }
  const std::string impl = std::string("nccl dispatch ") + to_string(dtype);
  return report_verdict(check_ht_dispatch(out, e, {.impl = impl, .fp8 = fp8, .with_topk = false}),
                        comm_.rank());
}

bool NcclBaseline::check_combine(const ExpectedHt& expected) const {
  HtCombineOutputs got;
  got.x.resize(static_cast<std::size_t>(num_tokens_ * hidden_));
  BENCH_CUDA(cudaMemcpy(got.x.data(), out_.get(), got.x.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost));
  return report_verdict(check_ht_combine(got, expected, /*with_topk_weights=*/false, "nccl"), comm_.rank());
}

std::vector<BenchOp> make_nccl_baseline_ops(BenchContext& context) {
  if (context.session.shared_gpus()) {
    if (context.session.rank() == 0)
      std::printf("# note: NCCL baseline skipped: ranks share a GPU, which NCCL refuses\n");
    return {};
  }
  auto baseline = std::make_shared<NcclBaseline>(context.session.nccl(), context.workload, context.inputs);
  const std::function<const ExpectedHt&()> expected = context.expected_ht;
  const Traffic traffic = context.traffic;
  const Workload& w = context.workload;
  const auto bf16_row = static_cast<double>(row_bytes(w, Dtype::kBf16));

  std::vector<BenchOp> ops;
  for (const Dtype dtype : {Dtype::kBf16, Dtype::kFp8}) {
    const auto row = static_cast<double>(row_bytes(w, dtype));
    BenchOp op;
    op.impl = "nccl";
    op.op = "dispatch";
    op.dtype = to_string(dtype);
    op.recv_bytes = static_cast<double>(traffic.recv_rows) * row;
    op.wire_bytes = static_cast<double>(traffic.send_rows_remote) * row;
    op.run = [baseline, dtype](cudaStream_t s) { baseline->dispatch(dtype, s); };
    op.poison = [baseline, dtype](cudaStream_t s) { baseline->poison_dispatch_outputs(dtype, s); };
    op.check = [baseline, dtype, expected] { return baseline->check_dispatch(dtype, expected()); };
    ops.push_back(std::move(op));
  }
  {
    BenchOp op;
    op.impl = "nccl";
    op.op = "combine";
    op.dtype = "bf16";
    op.recv_bytes = static_cast<double>(traffic.recv_rows) * bf16_row;
    op.wire_bytes =
        static_cast<double>(traffic.recv_rows_remote) * bf16_row;  // rows go back to their sources
    op.setup = [baseline](cudaStream_t s) { baseline->dispatch(Dtype::kBf16, s); };
    op.run = [baseline](cudaStream_t s) { baseline->combine(s); };
    op.poison = [baseline](cudaStream_t s) { baseline->poison_combine_outputs(s); };
    op.check = [baseline, expected] { return baseline->check_combine(expected()); };
    ops.push_back(std::move(op));
  }
  {
    BenchOp op;
    op.impl = "nccl-a2av";
    op.op = "dispatch";
    op.dtype = "bf16";
    op.recv_bytes = static_cast<double>(traffic.recv_rows) * bf16_row;
    op.wire_bytes = static_cast<double>(traffic.send_rows_remote) * bf16_row;
    op.setup = [baseline](cudaStream_t s) { baseline->dispatch(Dtype::kBf16, s); };
    op.run = [baseline](cudaStream_t s) { baseline->exchange_rows(Dtype::kBf16, s); };
    // NOTE: setup's dispatch leaves the expected rows in the receive buffer; only the poison makes
    // a no-op exchange fail.
    op.poison = [baseline](cudaStream_t s) { baseline->poison_dispatch_outputs(Dtype::kBf16, s); };
    op.check = [baseline, expected] { return baseline->check_dispatch(Dtype::kBf16, expected()); };
    ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace epcomm::bench
