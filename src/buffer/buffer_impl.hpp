// Buffer's internals, shared by the translation units that implement its operations.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/cuda_raii.hpp"
#include "core/domain_view.hpp"
#include "core/kernel_timer.hpp"
#include "epcomm/buffer.hpp"
#include "intranode/ht_layout_notify.hpp"
#include "intranode/ht_plan.hpp"

namespace epcomm {

struct LlState;  // low_latency/ll_state.hpp
struct MdState;  // internode/md_buffer.hpp

// G as the user asked for it: BufferOptions::ranks_per_domain, or EPCOMM_RANKS_PER_DOMAIN when set
// (a malformed value throws, naming the variable). 0: discovery decides.
int requested_ranks_per_domain(const BufferOptions& options);

struct Buffer::Impl {
  std::shared_ptr<Bootstrap> bootstrap;
  BufferOptions options;
  std::shared_ptr<Allocator> allocator;
  DomainInfo domains;
  int device = 0;
  int num_sms = 0;  // multiprocessors of this device

  DeviceBuffer region;                  // this rank's NVLink region (RegionLayout)
  std::vector<IpcMapping> peer_maps;    // [G]; empty entry for this rank
  MappedHostBuffer status;              // DeviceStatus, written by kernels
  MappedHostBuffer host_counts;         // notify's results for the host (HtHostCounts)
  DeviceBuffer counters;                // device-private counters (Counter)
  // EPCOMM_HT_TRACE: notify's phase stamps, [kNotifyTraceRing][kNotifyTracePoints] uint64 (else empty).
  DeviceBuffer notify_trace;
  DeviceBuffer scratch;                 // per-operation device scratch (ht_plan.hpp: HtScratch)
  Stream comm;                          // the communication stream
  Stream copy;                          // copy-engine paths: their copies and marks (joined into comm)
  Event copy_fork;                      // copy-engine paths: where the copy stream forks from comm
  Event copy_queued;                    // join_copy_stream's point on the copy stream
  MappedHostBuffer token_ranks;         // copy-engine dispatch: is_token_in_rank, copied for the host
  Event token_ranks_ready;              // after that copy, on the copy stream
  Stream own_copy;                      // copy-engine dispatch: its own rows' straight copies
  Event own_copy_fork, own_copy_done;   // where own_copy forks from comm, and joins it
  Event order_event;                    // reused for stream-to-stream ordering inside a call
  Event mark_event;                     // a point on the communication stream the host waits for
  HtTuning ht_tuning;                   // EPCOMM_HT_* knobs, read once
  KernelTimer timer{false};             // EPCOMM_KERNEL_TIMING: per-call kernel durations
  DomainView view;                      // what kernels get
  std::shared_ptr<LlState> ll;  // low-latency mode's state (ll_state.hpp); null otherwise
  // Multi-domain mode's state and symmetric region (internode/md_buffer.hpp); null with one domain.
  // NOTE: declared after the regions, so it goes (finalising NVSHMEM, collectively) before them.
  std::shared_ptr<MdState> md;
  std::uint64_t notify_calls = 0;       // notify publishes its counts under this sequence number
  DeviceBuffer rank_mask;               // [num_ranks] uint8, DomainView::masked (rank_mask.cpp)
  std::vector<std::uint8_t> masked_host;  // what rank_mask holds once the comm stream gets there
  DeviceBuffer telemetry;  // [kTelemetryOps][kTelemetryPeers] PeerCounters (BufferOptions::peer_telemetry)
  std::uint64_t mask_changes = 0;         // handles remember it: one made under another mask is refused
  // Calls of one local kernel (get_dispatch_layout; low-latency dispatch and combine without a hook)
  // that ask for no event and wait on none launch on the caller's stream (CommScope's direct mode);
  // false with EPCOMM_CALLER_STREAM=0, read when the Buffer is made.
  bool on_caller_stream = true;
  // A call ran its kernels on the caller's stream (CommScope's direct mode): the Buffer's own
  // streams no longer hold all of its work, so waits for "everything of this Buffer" are device-wide.
  bool direct_launches = false;
  // Waits for every kernel this Buffer queued (teardown, telemetry reads, mask changes).
  cudaError_t drain() noexcept;
  // Copy-engine dispatch: straight copies queued so far, to peers and to this rank's outputs (tests).
  std::uint64_t straight_copies_queued = 0, own_straight_copies_queued = 0;

  // The fused layout-and-notify launch's scratch (ht_layout_notify.hpp): kFusedLayoutMaxExperts
  // int32 expert counts, then its counters (FusedScratch); zero between calls.
  DeviceBuffer preamble_scratch;  // kFusedScratchBytes
  // Slots of `counters` (uint64 each).
  // kPacked: kMaxCopyChunks slots, the copy-engine dispatch's per-chunk pack counts (zeroed per call).
  enum Counter : int { kBarrierEpoch = 0, kNotifyEpoch = 1, kPacked = 2 };
  static constexpr std::size_t kCounterBytes = 4096;
  static_assert((kPacked + kMaxCopyChunks) * sizeof(std::uint64_t) <= kCounterBytes);
  std::uint64_t* counter(Counter c) const { return counters.as<std::uint64_t>() + c; }

  int rank() const { return bootstrap->rank(); }
  int num_ranks() const { return bootstrap->size(); }
  DeviceStatus* status_ptr() const { return static_cast<DeviceStatus*>(status.host()); }
  // Forgets a device-reported failure of kind `code` (one that leaves the buffer usable); any other
  // status stays.
  void clear_status(StatusCode code) const;
  // Throws the device-reported failure, if any (Buffer::check_status).
  void raise_status();
  // Masks `rank` (host mirror and, ordered on the communication stream, the device mask).
  void set_masked(int rank);
  // Makes the communication stream wait for everything queued so far on the copy stream: before
  // what the copies read is released there, and before the next operation reuses the regions. Also
  // on error paths, hence a status, not an exception.
  cudaError_t join_copy_stream();
  // The same for own_copy.
  cudaError_t join_own_copy_stream();
};

// How epcomm's own code and its tests reach a Buffer's internals (the public header shows none).
struct BufferAccess {
  static Buffer::Impl& impl(const Buffer& buffer) { return *buffer.impl_; }
};

inline const DomainView& buffer_impl_view(const Buffer& buffer) { return BufferAccess::impl(buffer).view; }
// Low-latency mode's state, null unless the Buffer was made for low-latency mode.
inline LlState* low_latency_state(const Buffer& buffer) { return BufferAccess::impl(buffer).ll.get(); }

// Orders one operation against the caller (see epcomm/stream.hpp): the communication stream waits
// on the caller's stream or event on construction; finish() joins the caller's stream or returns
// an event when async_finish is set.
// Direct mode (`direct`, for a call of one local launch whose outputs, if any, are allocated on the
// caller's stream: get_dispatch_layout, the low-latency kernels without a receive hook): when the
// caller asks for no event, waits on none and allocates on its own stream, the kernels run on the
// caller's stream itself, with none of the stream-ordering driver calls.
class CommScope {
 public:
  CommScope(Buffer::Impl& impl, const CallOptions& options, bool direct = false);
  cudaStream_t comm() const { return direct_ ? options_.stream : impl_.comm.get(); }
  // Where outputs are allocated (their memory is released on this stream).
  cudaStream_t alloc_stream() const { return options_.allocate_on_comm_stream ? comm() : caller(); }
  cudaStream_t caller() const { return options_.stream; }
  // Makes the communication stream wait for work queued so far on the allocation stream (the
  // outputs' allocations), when the two differ.
  void allocations_ready();
  // mark() records the work queued so far (notify); wait_for_word() then blocks the host until
  // `*word == value` in mapped host memory (notify publishing its counts, seen as soon as written,
  // before the kernel even ends), or until the marked work is done without it: a failed exchange,
  // thrown as the device's report. Work queued after the mark may still run (a kernel launched to
  // overlap the handshake).
  void mark();
  void wait_for_word(const std::uint64_t* word, std::uint64_t value);
  // The same for any condition on mapped host memory: `ready()` is asked until true (it reads
  // through volatile pointers); then an acquire fence.
  void wait_until(const std::function<bool()>& ready);
  EventHandle finish();

 private:
  Buffer::Impl& impl_;
  const CallOptions& options_;
  bool direct_;
};

// A Buffer's high-throughput tuning changed for a scope and restored after it (tests, benchmark
// variants in one run); derived classes set the fields they vary through tuning().
class ScopedHtTuning {
 public:
  explicit ScopedHtTuning(Buffer& buffer) : current_(BufferAccess::impl(buffer).ht_tuning), saved_(current_) {}
  ~ScopedHtTuning() { current_ = saved_; }
  ScopedHtTuning(const ScopedHtTuning&) = delete;
  ScopedHtTuning& operator=(const ScopedHtTuning&) = delete;

 protected:
  HtTuning& tuning() { return current_; }

 private:
  HtTuning& current_;
  HtTuning saved_;
};

}  // namespace epcomm
