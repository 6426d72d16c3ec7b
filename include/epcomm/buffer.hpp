// epcomm::Buffer: the communication memory of one expert-parallel group, and the operations that
// use it.
//
//   auto bootstrap = epcomm::make_tcp_bootstrap(epcomm::tcp_bootstrap_options_from_env());
//   cudaSetDevice(local_rank);
//   epcomm::Buffer buffer(std::move(bootstrap), {.num_nvl_bytes = 1 << 30});
//   auto layout = buffer.get_dispatch_layout(topk_idx, num_experts, {.stream = stream});
//
// A Buffer maps every NVLink-domain peer's region into this process (CUDA IPC; nothing but CUDA
// is needed on one node). Ranks must create their Buffers collectively, in the same order, and call
// communication operations in the same order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "epcomm/bootstrap.hpp"
#include "epcomm/device_tensor.hpp"
#include "epcomm/dispatch.hpp"
#include "epcomm/export.hpp"
#include "epcomm/ht_options.hpp"
#include "epcomm/kernel_time.hpp"
#include "epcomm/ll_trace.hpp"
#include "epcomm/low_latency.hpp"
#include "epcomm/stream.hpp"
#include "epcomm/telemetry.hpp"
#include "epcomm/types.hpp"

namespace epcomm {

// How low-latency mode reaches peers (BufferOptions::ll_transport).
enum class LlTransport : int {
  // One NVLink domain: peers through CUDA IPC stores. Several (low-latency mode, a program linked
  // with epcomm_nvshmem): peers of the domain by stores, the other domains by NVSHMEM puts and
  // signals, in one launch (docs/multi_domain.md, "Low-latency across domains").
  kAuto = 0,
  kNvshmem = 1,  // every peer through NVSHMEM puts and signals, as if each GPU were its own domain
};

struct BufferOptions {
  std::int64_t num_nvl_bytes = 0;   // workspace bytes of the NVLink region on each rank
  // The symmetric (NVSHMEM) region of multi-domain mode (epcomm/multi_domain.hpp sizes it): needed,
  // at least its fixed header, when the ranks form more than one NVLink domain; ignored (logged)
  // with one. > 0 needs a program linked with epcomm_nvshmem (-DEPCOMM_WITH_NVSHMEM=ON), no other
  // NVSHMEM user in the process and a high-throughput Buffer, else kUnsupported before any
  // collective step. Equal on every rank.
  std::int64_t num_rdma_bytes = 0;
  // G, the ranks of one NVLink domain (docs/multi_domain.md). 0: one domain per host, found from
  // host identities. 1..72: each host's ranks split into domains of G consecutive ranks, so one
  // machine may hold several domains; G must divide every host's ranks and be equal on every rank
  // (else epcomm::Error naming ranks_per_domain). EPCOMM_RANKS_PER_DOMAIN overrides it when set.
  // Several domains: a low-latency Buffer serves them by its own path (LlTransport::kAuto, no
  // num_rdma_bytes); a high-throughput Buffer needs num_rdma_bytes (multi-domain mode) and refuses
  // low_latency_mode set (kUnsupported).
  int ranks_per_domain = 0;
  bool low_latency_mode = false;
  std::int64_t timeout_ms = -1;            // bound of every wait on a peer; -1: EPCOMM_TIMEOUT_MS
  std::shared_ptr<Allocator> allocator{};  // where outputs come from; null: default_allocator()
  // kNvshmem (low_latency_mode only) runs the cross-domain path even on one node, where NVSHMEM
  // uses NVLink peer-to-peer. Needs a program linked with epcomm_nvshmem (-DEPCOMM_WITH_NVSHMEM=ON);
  // otherwise the constructor throws kUnsupported before any collective step. The low-latency
  // workspace (ll_region_bytes_hint bytes) then comes from NVSHMEM's symmetric heap, not from
  // num_nvl_bytes; the constructor initialises NVSHMEM (collectively) and sets
  // NVSHMEM_SYMMETRIC_SIZE to fit unless the user set it. NVSHMEM keeps one state per process: at
  // most one such Buffer lives at a time (a second throws kUnsupported). A combine whose y lies
  // outside the Buffer's memory copies it through its zero-copy buffer (puts beyond NVLink read
  // only symmetric memory), overwriting what get_next_low_latency_combine_buffer returned for it.
  LlTransport ll_transport = LlTransport::kAuto;
  // How high-throughput dispatch and combine move rows (epcomm/ht_options.hpp); the defaults suit
  // every shape measured so far. Buffer::set_ht_options changes them between calls.
  HtOptions ht{};
  // A rank whose wait on a peer times out masks that peer itself (Buffer::mask_rank) before the
  // timeout is raised, and the Buffer stays usable by the survivors (docs/reliability.md). Refused
  // (kUnsupported) by a multi-domain high-throughput Buffer, which cannot mask.
  bool mask_on_timeout = false;
  // Count per-peer telemetry on the device (epcomm/telemetry.hpp, Buffer::peer_telemetry): bytes
  // to and from each peer and time waited on each, per operation. Off: nothing is counted.
  bool peer_telemetry = false;
};

// Outputs of get_dispatch_layout (SPEC "Layout"). Counts are int32; is_token_in_rank is bool.
struct DispatchLayout {
  DeviceTensor num_tokens_per_rank;    // [R]
  DeviceTensor num_tokens_per_domain;  // [num_domains]
  DeviceTensor num_tokens_per_expert;  // [E]
  DeviceTensor is_token_in_rank;       // [T, R]
  EventHandle event;                   // valid with async_finish
};

class EPCOMM_API Buffer {
 public:
  Buffer(std::shared_ptr<Bootstrap> bootstrap, const BufferOptions& options);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  int rank() const;
  int num_ranks() const;
  int num_domain_ranks() const;  // G: ranks sharing this rank's NVLink domain
  int num_domains() const;
  cudaStream_t comm_stream() const;
  std::int64_t num_nvl_bytes() const;

  // SPEC "Layout". topk_idx: [T, k] int64 or int32, contiguous, on this device; -1 is an empty
  // slot. An index outside [-1, num_experts) is reported by check_status() (it is only visible on
  // the device); the kernel skips it and writes nothing out of bounds.
  DispatchLayout get_dispatch_layout(const Tensor& topk_idx, int num_experts,
                                     const CallOptions& options = {});

  // SPEC "High-throughput dispatch". Without num_worst_tokens, waits once on the host for the
  // received count (it sizes the outputs); with it, or with a handle (cached), never.
  DispatchResult dispatch(const DispatchArgs& args, const CallOptions& options = {});

  // SPEC "High-throughput combine": the reverse of the dispatch that made args.handle.
  CombineResult combine(const CombineArgs& args, const CallOptions& options = {});

  // The transfer paths of the next high-throughput calls (epcomm/ht_options.hpp), exactly as given:
  // the environment's overrides apply only when the Buffer is made. Every rank must set the same.
  // Checked (epcomm::Error naming the field).
  void set_ht_options(const HtOptions& options);
  HtOptions ht_options() const;

  // A barrier across the NVLink domain, on the communication stream, with a bounded wait.
  EventHandle barrier(const CallOptions& options = {});

  // The summed duration, in microseconds, of the kernels of this buffer's last operation (waits for
  // them); -1 unless EPCOMM_KERNEL_TIMING=1 was set when the buffer was made.
  double last_kernel_us();

  // With EPCOMM_KERNEL_TIMING=1, the last operation's timeline (waits for its kernels): each kernel
  // with the idle time on the communication stream before it, then the host's steps in microseconds
  // after the operation's checks. Empty otherwise. A diagnostic; its format may change.
  std::string last_call_timeline();

  // Kernel timing of this buffer's next operations, on or off (initially EPCOMM_KERNEL_TIMING as
  // set when the buffer was made). Timing records events around every launch (host work in every
  // call), so a measurement turns it on for a separate pass. Call it between operations.
  void set_kernel_timing(bool enabled);
  bool kernel_timing() const;

  // With kernel timing on, the last operation's kernels in launch order, each with its device time
  // (waits for them); empty when timing is off.
  std::vector<KernelTime> last_kernel_times();

  // Throws epcomm::Error if a kernel of this buffer reported a failure (a peer that timed out, an
  // invalid expert index). Every operation calls it on entry; call it after synchronising to learn
  // about the last one.
  void check_status();

  // Rank masking (SPEC "Rank masking", docs/reliability.md). A masked rank holds no tokens and no
  // experts for this rank: dispatch sends nothing to it (slots naming its experts behave as -1),
  // combine takes nothing from it, no wait waits on it; in high-throughput and low-latency mode
  // (across NVLink domains too) and in captured graphs (the kernels read the mask at run time). A
  // multi-domain high-throughput Buffer (num_rdma_bytes across domains) refuses it (kUnsupported):
  // its kernels between domains read no mask. mask_rank is local and ordered on the communication
  // stream: every survivor masks the same ranks before its next call. A handle made before the
  // mask changed is refused by cached dispatch and combine (dispatch again).
  void mask_rank(int rank);
  // [num_ranks]: true where the rank is masked here.
  std::vector<bool> masked_ranks() const;
  // Collective over every rank of the Buffer, the masked ones included (they are back): waits for
  // this rank's work, unmasks every rank and resets the counters the ranks keep in step (barrier,
  // count exchange, low-latency sequence), so a rank that missed calls can rejoin. Receive every
  // split low-latency call (return_recv_hook) first, on every rank.
  void clear_rank_mask();

  // Per-peer telemetry since the Buffer was made or last cleared (BufferOptions::peer_telemetry;
  // empty when off): waits for this rank's queued work, then reads the device's counters; with
  // `clear`, zeroes them. slowest_peer() names the peer waited on longest.
  std::vector<PeerTraffic> peer_telemetry(bool clear = false);

  // Low-latency mode (SPEC "Low-latency dispatch", "Low-latency combine"; epcomm/low_latency.hpp
  // has the outputs' lifetime rule). One Buffer class serves both modes, but a Buffer is made for
  // one: this constructor makes a low-latency Buffer (options.low_latency_mode set, num_nvl_bytes
  // >= ll_region_bytes_hint(...)), whose workspace holds the low-latency state, so it refuses
  // dispatch and combine (kUnsupported); a Buffer made by the other constructor refuses the
  // low-latency calls. Collective, like the other constructor.
  Buffer(std::shared_ptr<Bootstrap> bootstrap, const BufferOptions& options,
         const LowLatencyOptions& low_latency);

  // x: [T_r <= T, hidden] bfloat16; topk_idx: [T_r, k <= max_topk] int64 or int32 (-1: no expert).
  LlDispatchResult low_latency_dispatch(const Tensor& x, const Tensor& topk_idx,
                                        const LlDispatchOptions& ll = {}, const CallOptions& options = {});
  // y: [nle, R*T, hidden] bfloat16 in the layout of handle's dispatch; topk_idx as given to that
  // dispatch; topk_weights: [T_r, k] float32.
  LlCombineResult low_latency_combine(const Tensor& y, const Tensor& topk_idx, const Tensor& topk_weights,
                                      const LlHandle& handle, const LlCombineOptions& ll = {},
                                      const CallOptions& options = {});
  // [nle, R*T, hidden] bfloat16 the caller may write y into for the next combine (zero_copy).
  Tensor get_next_low_latency_combine_buffer(const LlHandle& handle) const;

  // A diagnostic (epcomm/ll_trace.hpp): the phase timestamps of `kernel`'s recent calls on this
  // Buffer, copied to the host after waiting for the device; with `clear`, the record is then zeroed,
  // so the next read holds only later calls. Empty unless EPCOMM_LL_TRACE=1 was set when this
  // low-latency Buffer was made (always empty for a high-throughput Buffer).
  LlTrace low_latency_trace(LlKernel kernel, bool clear = false);
  // The same diagnostic for the count exchange (notify) that opens a high-throughput dispatch on
  // one NVLink domain: one block (`blocks` is 1), its thread 0 stamping each of `points`, from
  // entry to exit, in order (the slot of a call is its exchange's number modulo `ring`). Empty unless
  // EPCOMM_HT_TRACE=1 was set when this Buffer was made, and for a Buffer of several NVLink domains (whose
  // exchange is another kernel).
  LlTrace notify_trace(bool clear = false);

  struct Impl;  // internal (incomplete here)

 private:
  // What both constructors share; `low_latency`: the options of the low-latency one (the only Buffer
  // that may span several NVLink domains so far), null for the high-throughput one.
  Buffer(const LowLatencyOptions* low_latency, std::shared_ptr<Bootstrap> bootstrap, const BufferOptions& options);

  friend struct BufferAccess;
  std::unique_ptr<Impl> impl_;
};

}  // namespace epcomm
