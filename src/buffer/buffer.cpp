#include <atomic>
#include <cstring>
#include <vector>

#include "buffer/barrier.hpp"
#include "buffer/buffer_impl.hpp"
#include "buffer/creation_record.hpp"
#include "buffer/rank_mask.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/env.hpp"
#include "core/log.hpp"
#include "core/status_message.hpp"
#include "internode/md_buffer.hpp"
#include "intranode/ht_args.hpp"
#include "intranode/ht_plan.hpp"
#include "low_latency/ll_checks.hpp"
#include "low_latency/ll_domains.hpp"
#include "low_latency/ll_state.hpp"
#include "transport/ll_transport.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

namespace {

// What each rank publishes about its region through the bootstrap.
struct RegionRecord {
  cudaIpcMemHandle_t handle;
  CreationRecord creation;
  int device;
};

// The options' own preconditions: they need no peer and no GPU.
void validate_arguments(const Bootstrap* bootstrap, const BufferOptions& options) {
  EPCOMM_CHECK_ARG(bootstrap != nullptr, "bootstrap: expected a bootstrap, got null");
  EPCOMM_CHECK_ARG(options.num_nvl_bytes >= 0, "num_nvl_bytes: expected >= 0, got ", options.num_nvl_bytes);
  EPCOMM_CHECK_ARG(options.num_rdma_bytes >= 0, "num_rdma_bytes: expected >= 0, got ",
                   options.num_rdma_bytes);
  EPCOMM_CHECK_ARG(options.timeout_ms == -1 || options.timeout_ms > 0, "timeout_ms: expected > 0 or -1, got ",
                   options.timeout_ms);
  checks::check_md_transport(options, ll_nvshmem_hooks());
  checks::check_ll_transport(options, ll_nvshmem_hooks());
  check_ht_options(options.ht);
  EPCOMM_CHECK_ARG(options.ranks_per_domain >= 0 && options.ranks_per_domain <= kMaxDomainRanks,
                   "ranks_per_domain: expected 0 (one domain per host) or 1 to ", kMaxDomainRanks, ", got ",
                   options.ranks_per_domain);
}

// What the ranks found about each other (after discovery); true for multi-domain high-throughput
// mode. A low-latency Buffer serves several domains by its own path (low_latency/ll_domains.hpp
// decides how, or refuses); a high-throughput one needs num_rdma_bytes for several
// (internode/md_buffer.hpp), and low_latency_mode unset.
bool validate_domains(const DomainInfo& domains, const BufferOptions& options, bool low_latency) {
  EPCOMM_REQUIRE(domains.ranks_per_domain <= kMaxDomainRanks, ErrorCategory::kUnsupported,
                 "ranks per NVLink domain: at most ", kMaxDomainRanks, " supported, got ",
                 domains.ranks_per_domain);
  if (low_latency) return false;
  return checks::check_md_domains(options, domains);
}

// A new Buffer's internals (its streams and events), made once the options pass the checks that
// need no peer: before any CUDA call and any collective step, so every rank refuses such options
// alike, leaving no rank waiting for the others, and a machine without a GPU still names the
// argument rather than the missing driver.
std::unique_ptr<Buffer::Impl> new_impl(const Bootstrap* bootstrap, const BufferOptions& options) {
  validate_arguments(bootstrap, options);
  requested_ranks_per_domain(options);  // the environment's value is checked before any exchange too
  return std::make_unique<Buffer::Impl>();
}

}  // namespace

int requested_ranks_per_domain(const BufferOptions& options) {
  return env::is_set("EPCOMM_RANKS_PER_DOMAIN") ? static_cast<int>(env::get_int("EPCOMM_RANKS_PER_DOMAIN"))
                                                : options.ranks_per_domain;
}

Buffer::Buffer(std::shared_ptr<Bootstrap> bootstrap, const BufferOptions& options)
    : Buffer(/*low_latency=*/nullptr, std::move(bootstrap), options) {}

Buffer::Buffer(const LowLatencyOptions* low_latency, std::shared_ptr<Bootstrap> bootstrap,
               const BufferOptions& options)
    : impl_(new_impl(bootstrap.get(), options)) {
  Impl& m = *impl_;
  m.bootstrap = std::move(bootstrap);
  m.options = options;
  m.allocator = options.allocator ? options.allocator : default_allocator();
  m.domains = discover_domains(*m.bootstrap, local_host_identity(), requested_ranks_per_domain(options));
  const bool multi_domain = validate_domains(m.domains, options, low_latency != nullptr);
  log::set_rank(m.rank());

  EPCOMM_CUDA_CHECK(cudaGetDevice(&m.device));
  EPCOMM_CUDA_CHECK(cudaDeviceGetAttribute(&m.num_sms, cudaDevAttrMultiProcessorCount, m.device));
  const std::int64_t timeout_ms =
      options.timeout_ms > 0 ? options.timeout_ms : env::get_int("EPCOMM_TIMEOUT_MS");

  const std::size_t region_bytes =
      RegionLayout::region_bytes(static_cast<std::size_t>(options.num_nvl_bytes));
  m.region = DeviceBuffer(region_bytes);
  EPCOMM_CUDA_CHECK(cudaMemset(m.region.get(), 0, region_bytes));
  m.status = MappedHostBuffer(sizeof(DeviceStatus));
  std::memset(m.status.host(), 0, sizeof(DeviceStatus));
  m.host_counts = MappedHostBuffer(kHostCountsBytes);
  m.timer = KernelTimer(env::get_bool("EPCOMM_KERNEL_TIMING"));
  m.on_caller_stream = env::get_bool("EPCOMM_CALLER_STREAM");
  m.ht_tuning = HtTuning::resolve(options.ht);
  m.counters = DeviceBuffer(Buffer::Impl::kCounterBytes);
  m.scratch = DeviceBuffer(HtScratch::kBytes);
  EPCOMM_CUDA_CHECK(cudaMemset(m.counters.get(), 0, m.counters.bytes()));
  m.preamble_scratch = DeviceBuffer(kFusedScratchBytes);
  EPCOMM_CUDA_CHECK(cudaMemset(m.preamble_scratch.get(), 0, m.preamble_scratch.bytes()));
  if (env::get_bool("EPCOMM_HT_TRACE")) {
    m.notify_trace = DeviceBuffer(sizeof(std::uint64_t) * kNotifyTraceRing * kNotifyTracePoints);
    EPCOMM_CUDA_CHECK(cudaMemset(m.notify_trace.get(), 0, m.notify_trace.bytes()));
  }
  m.rank_mask = DeviceBuffer(static_cast<std::size_t>(m.num_ranks()));
  EPCOMM_CUDA_CHECK(cudaMemset(m.rank_mask.get(), 0, m.rank_mask.bytes()));
  m.masked_host.assign(static_cast<std::size_t>(m.num_ranks()), 0);
  if (options.peer_telemetry) {
    m.telemetry = DeviceBuffer(sizeof(PeerCounters) * kTelemetryOps * kTelemetryPeers);
    EPCOMM_CUDA_CHECK(cudaMemset(m.telemetry.get(), 0, m.telemetry.bytes()));
  }
  EPCOMM_CUDA_CHECK(cudaDeviceSynchronize());

  // Exchange region handles and map every domain peer's region.
  RegionRecord mine{};
  mine.handle = ipc_handle_of(m.region);
  mine.creation = make_creation_record(low_latency, static_cast<std::int64_t>(region_bytes));
  mine.device = m.device;
  std::vector<RegionRecord> records(static_cast<std::size_t>(m.num_ranks()));
  m.bootstrap->all_gather(&mine, records.data(), sizeof(RegionRecord));

  const int G = m.domains.ranks_per_domain;
  const int base = m.domains.domain * G;
  m.view.rank = m.rank();
  m.view.domain_rank = m.domains.local_index;
  m.view.num_domain_ranks = G;
  m.view.domain_base_rank = base;
  m.view.status = static_cast<DeviceStatus*>(m.status.device());
  m.view.barrier_epoch = m.counter(Impl::kBarrierEpoch);
  m.view.timeout_ns = static_cast<std::uint64_t>(timeout_ms) * 1000000ull;
  m.view.masked = m.rank_mask.as<std::uint8_t>();
  m.view.telemetry = m.telemetry.as<PeerCounters>();
  std::vector<CreationRecord> creations;
  creations.reserve(records.size());
  for (const RegionRecord& rec : records) creations.push_back(rec.creation);
  const std::string difference = first_creation_difference(creations, m.rank(), G);
  EPCOMM_REQUIRE(difference.empty(), ErrorCategory::kInvalidArgument, difference);
  m.peer_maps.resize(static_cast<std::size_t>(G));
  for (int p = 0; p < G; ++p) {
    const RegionRecord& rec = records[static_cast<std::size_t>(base + p)];
    if (p == m.domains.local_index) {
      m.view.peer_base[p] = m.region.get();
    } else {
      m.peer_maps[static_cast<std::size_t>(p)] = IpcMapping(rec.handle);
      m.view.peer_base[p] = m.peer_maps[static_cast<std::size_t>(p)].get();
    }
  }
  m.bootstrap->barrier();  // every peer has mapped every region before any kernel writes to one
  if (multi_domain) m.md = open_md_state(*m.bootstrap, options, m.domains, *ll_nvshmem_hooks());
  EPCOMM_LOG_INFO("buffer ready: ", G, " ranks in the NVLink domain, ", region_bytes,
                  " bytes per region, timeout ", timeout_ms, " ms");
}

Buffer::~Buffer() {
  if (!impl_) return;
  // Peers may still be writing into this rank's region: finish local work, then wait for every rank
  // to reach teardown before unmapping. Errors are logged; a destructor never throws.
  if (const cudaError_t status = impl_->drain(); status != cudaSuccess)
    EPCOMM_LOG_WARN("Buffer teardown: waiting for its kernels: ", cudaGetErrorString(status));
  // NOTE: bounded: the kernels above end within their timeouts, the bootstrap's barrier within its
  // own (at once when the bootstrap already failed). With a peer gone, local resources are freed.
  // NVSHMEM's collective teardown runs exactly when every rank answered here, so all of them are
  // in it together. An earlier timeout alone is no reason to skip it: on the H200 (2026-12-05), a
  // rank that skipped it while its late but live peer entered it left that peer waiting there for
  // ever, and a process that exits with NVSHMEM never finalised was killed by SIGSEGV at exit.
  bool peers_answered = true;
  try {
    impl_->bootstrap->barrier();
  } catch (const std::exception& e) {
    EPCOMM_LOG_WARN("Buffer teardown: barrier with peers failed: ", e.what());
    peers_answered = false;
  }
  if (!peers_answered) {
    if (impl_->ll) abandon_collective_teardown(impl_->ll->nvshmem);
    if (impl_->md) abandon_collective_teardown(impl_->md->nvshmem);
  }
}

int Buffer::rank() const {
  return impl_->rank();
}
int Buffer::num_ranks() const {
  return impl_->num_ranks();
}
int Buffer::num_domain_ranks() const {
  return impl_->domains.ranks_per_domain;
}
int Buffer::num_domains() const {
  return impl_->domains.num_domains;
}
cudaStream_t Buffer::comm_stream() const {
  return impl_->comm.get();
}
std::int64_t Buffer::num_nvl_bytes() const {
  return impl_->options.num_nvl_bytes;
}

void Buffer::check_status() {
  impl_->raise_status();
}

void Buffer::Impl::raise_status() {
  DeviceStatus* status = status_ptr();
  const auto code = static_cast<StatusCode>(*reinterpret_cast<volatile std::int32_t*>(&status->code));
  if (code == StatusCode::kOk) return;
  if (static_cast<std::int32_t>(code) == -1) return;  // a kernel is still writing the record
  DeviceStatus copy = *status;
  Error error = status_error(copy, view.timeout_ns / 1000000ull, __FILE__, __LINE__);
  if (ll != nullptr && domains.num_domains > 1)
    error = with_peer_domain(error, copy, domains.ranks_per_domain);
  // An invalid input leaves the buffer usable (so does a low-latency dispatch's overflow of one
  // expert's rows: it dropped the extra selections and completed its protocol); a timeout leaves
  // peers out of step, so it sticks, unless the survivors mask the peer (mask_on_timeout) and carry
  // on without it.
  clear_status(StatusCode::kInvalidExpert);
  if (code == StatusCode::kRegionTooSmall && copy.op == static_cast<std::int32_t>(OpId::kLlDispatch))
    clear_status(StatusCode::kRegionTooSmall);
  if (code == StatusCode::kTimeout && options.mask_on_timeout) mask_after_timeout(*this, copy);
  throw error;
}

namespace {
// `to` waits for everything queued so far on `from` (recorded at `at`).
cudaError_t join_stream(cudaStream_t to, cudaStream_t from, const Event& at) {
  const cudaError_t recorded = cudaEventRecord(at.get(), from);
  if (recorded != cudaSuccess) return recorded;
  return cudaStreamWaitEvent(to, at.get(), 0);
}
}  // namespace

cudaError_t Buffer::Impl::join_copy_stream() {
  return join_stream(comm.get(), copy.get(), copy_queued);
}

cudaError_t Buffer::Impl::join_own_copy_stream() {
  return join_stream(comm.get(), own_copy.get(), own_copy_done);
}

void Buffer::Impl::clear_status(StatusCode code) const {
  DeviceStatus* s = status_ptr();
  if (*reinterpret_cast<volatile std::int32_t*>(&s->code) == static_cast<std::int32_t>(code))
    std::memset(s, 0, sizeof(DeviceStatus));
}

EventHandle Buffer::barrier(const CallOptions& options) {
  check_status();
  CommScope scope(*impl_, options);
  launch_domain_barrier(impl_->view, scope.comm());
  return scope.finish();
}

double Buffer::last_kernel_us() {
  return impl_->timer.total_us();
}

std::string Buffer::last_call_timeline() {
  return impl_->timer.timeline();
}

void Buffer::set_kernel_timing(bool enabled) {
  impl_->timer.set_enabled(enabled);
}

bool Buffer::kernel_timing() const {
  return impl_->timer.enabled();
}

std::vector<KernelTime> Buffer::last_kernel_times() {
  std::vector<KernelTime> out;
  for (const TimelineKernel& k : impl_->timer.kernels()) out.push_back({k.label, k.kernel_us});
  return out;
}

CommScope::CommScope(Buffer::Impl& impl, const CallOptions& options, bool direct)
    : impl_(impl),
      options_(options),
      direct_(direct && !options.async_finish && !options.previous_event.valid() &&
              !options.allocate_on_comm_stream) {
  if (direct_) {
    impl_.direct_launches = true;
  } else if (options.previous_event.valid()) {
    options.previous_event.wait(comm());
  } else {
    // The communication stream starts after the caller's pending work.
    impl_.order_event.record(options.stream);
    EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(comm(), impl_.order_event.get(), 0));
  }
  impl_.timer.reset(comm());
}

cudaError_t Buffer::Impl::drain() noexcept {
  if (direct_launches) return cudaDeviceSynchronize();
  cudaError_t first = cudaSuccess;
  for (cudaStream_t stream : {comm.get(), copy.get(), own_copy.get()}) {
    const cudaError_t status = cudaStreamSynchronize(stream);
    if (first == cudaSuccess) first = status;
  }
  return first;
}

void CommScope::allocations_ready() {
  if (alloc_stream() == comm()) return;
  impl_.order_event.record(alloc_stream());
  EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(comm(), impl_.order_event.get(), 0));
}

void CommScope::mark() {
  impl_.mark_event.record(comm());
}

void CommScope::wait_for_word(const std::uint64_t* word, std::uint64_t value) {
  const volatile std::uint64_t* seen = word;
  wait_until([&] { return *seen == value; });  // the counts were written before the word
}

void CommScope::wait_until(const std::function<bool()>& ready) {
  for (std::uint32_t spins = 1;; ++spins) {
    if (ready()) break;
    // NOTE: a driver call per poll would slow the wake-up; ask about the marked work now and then.
    if (spins % 256 != 0) continue;
    const cudaError_t done = cudaEventQuery(impl_.mark_event.get());
    if (done == cudaErrorNotReady) continue;
    EPCOMM_CUDA_CHECK(done);
    if (ready()) break;
    impl_.raise_status();
    EPCOMM_REQUIRE(false, ErrorCategory::kInternal, "notify ended without publishing its counts");
  }
  std::atomic_thread_fence(std::memory_order_acquire);
}

EventHandle CommScope::finish() {
  if (direct_) return {};
  if (options_.async_finish) return EventHandle::record(comm());
  impl_.order_event.record(comm());
  EPCOMM_CUDA_CHECK(cudaStreamWaitEvent(options_.stream, impl_.order_event.get(), 0));
  return {};
}

void Buffer::set_ht_options(const HtOptions& options) { impl_->ht_tuning.set(options); }

HtOptions Buffer::ht_options() const { return impl_->ht_tuning.options(); }

}  // namespace epcomm
