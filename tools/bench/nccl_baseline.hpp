// The NCCL baseline of docs/benchmark.md in C++: what a user writes instead of an EP library, with
// NCCL directly.
//
// Dispatch: per-token destination ranks on the device (a token goes to a rank once if any of its
// top-k experts lives there), per-rank counts, count exchange (all_to_all through grouped
// ncclSend/ncclRecv), counts copied to the host (the host synchronisation), rows gathered into a
// send buffer ordered by destination rank, then all_to_all_v of the rows. Received rows come out
// ordered by source rank, then token: exactly the order of docs/operations.md, so they compare bit-exactly
// with the CPU reference. Combine: all_to_all_v back, then a float32 reduction into token order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "bench/bench_op.hpp"
#include "bench/cuda.hpp"
#include "bench/device_inputs.hpp"
#include "bench/expected.hpp"
#include "bench/nccl_comm.hpp"
#include "bench/workload.hpp"

namespace epcomm::bench {

class NcclBaseline {
 public:
  // Allocates for the worst case (every token to every rank). `comm` and `inputs` must outlive it.
  NcclBaseline(NcclComm& comm, const Workload& workload, const DeviceInputs& inputs);

  // The whole baseline dispatch (layout + count exchange + host sync + gather + row exchange).
  // BF16 rows are hidden*2 bytes; FP8 rows hidden bytes followed by hidden/128 fp32 scales.
  void dispatch(Dtype dtype, cudaStream_t stream);
  // The all_to_all_v of the rows alone, with the send buffer and counts of the last dispatch(dtype).
  void exchange_rows(Dtype dtype, cudaStream_t stream);
  // Combine of the last BF16 dispatch's received rows: all_to_all_v back, then the reduction.
  void combine(cudaStream_t stream);

  // Before a checked call: the poison (bench/poison.hpp) over the receive rows of `dtype`, or over
  // combine's received rows and output.
  void poison_dispatch_outputs(Dtype dtype, cudaStream_t stream);
  void poison_combine_outputs(cudaStream_t stream);
  // Compare the device results with the CPU reference (the stream's work must be complete).
  bool check_dispatch(Dtype dtype, const ExpectedHt& expected) const;
  bool check_combine(const ExpectedHt& expected) const;

 private:
  struct Rows {
    int64_t row_bytes = 0;
    DeviceBuffer send;  // [R * T rows]
    DeviceBuffer recv;  // [R * T rows]
    bool dispatched = false;
  };
  Rows& rows(Dtype dtype) { return dtype == Dtype::kBf16 ? bf16_ : fp8_; }
  const Rows& rows(Dtype dtype) const { return dtype == Dtype::kBf16 ? bf16_ : fp8_; }
  void route(cudaStream_t stream);
  void exchange_counts(cudaStream_t stream);
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts,
                    const std::vector<int64_t>& send_offsets, void* recv,
                    const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_offsets,
                    int64_t row_bytes, cudaStream_t stream);
  int64_t total_recv_rows() const { return recv_offsets_.back(); }

  NcclComm& comm_;
  const DeviceInputs& inputs_;
  int num_ranks_ = 1;
  int num_local_experts_ = 0;
  int64_t num_tokens_ = 0;
  int64_t hidden_ = 0;

  DeviceBuffer mask_;       // [R, T] int32
  DeviceBuffer offsets_;    // [R, T] int32, exclusive scan of mask_
  DeviceBuffer send_pos_;   // [T, R] int32
  DeviceBuffer src_token_;  // [R * T] int32
  DeviceBuffer counts_;     // [2R] int32: send counts, then received counts
  DeviceBuffer scan_temp_;
  std::size_t scan_temp_bytes_ = 0;
  PinnedHostBuffer host_counts_;  // [2R] int32, pinned

  // Host copies of the last count exchange, in rows; offsets have R + 1 entries.
  std::vector<int64_t> send_counts_, recv_counts_, send_offsets_, recv_offsets_;

  Rows bf16_;
  Rows fp8_;
  DeviceBuffer back_;  // [R * T, hidden] BF16: combine's received rows, in send-buffer order
  DeviceBuffer out_;   // [T, hidden] BF16
};

// The baseline's ops for one workload: dispatch BF16, dispatch FP8, combine BF16 (impl "nccl") and
// the raw all_to_all_v of the BF16 rows (impl "nccl-a2av").
std::vector<BenchOp> make_nccl_baseline_ops(BenchContext& context);

}  // namespace epcomm::bench
