// Buffer::dispatch on a multi-domain Buffer (docs/multi_domain.md, "Dispatch"): checks, the ring
// configuration that num_rdma_bytes gives, notify across domains (or its synchronisations alone for
// a cached dispatch), the handshake, outputs, the dispatch kernel.
#include <algorithm>
#include <optional>
#include <vector>

#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "internode/md_args.hpp"
#include "internode/md_buffer.hpp"
#include "internode/md_handle.hpp"
#include "internode/md_sizes.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/dispatch_outputs.hpp"
#include "intranode/ht_plan.hpp"
#include "intranode/op_checks.hpp"

namespace epcomm {

namespace {

template <typename T>
T* data_of(const DeviceTensor& t) {
  return static_cast<T*>(t.data());
}

// What one call decided before anything is queued.
struct MdPlanned {
  checks::DispatchShape shape;
  const DispatchHandle::State* cached = nullptr;
  int num_local_experts = 0;
  MdSymmetricLayout sym;
  HtDispatchLayout region;
};

MdPlanned plan_md_dispatch(const Buffer::Impl& m, const DispatchArgs& a) {
  MdPlanned p;
  p.shape = checks::check_dispatch_args(a, m.num_ranks());
  checks::check_inputs_outside_region(a, m.region.get(), m.region.bytes());
  const int G = m.domains.ranks_per_domain, D = m.domains.num_domains, R = m.num_ranks();
  if (a.handle != nullptr) {
    p.cached = &handle_state(*a.handle);
    EPCOMM_CHECK_ARG(p.cached->md != nullptr,
                     "handle: made by a dispatch within one NVLink domain; this Buffer "
                     "spans ",
                     D, " domains");
  }
  EPCOMM_CHECK_ARG(a.config.num_sms >= 2, "config.num_sms: expected >= 2, got ", a.config.num_sms);
  p.num_local_experts = p.cached != nullptr ? p.cached->num_local_experts : p.shape.num_experts / R;
  const MdShape shape{.num_tokens = p.shape.num_tokens,
                      .hidden = p.shape.hidden,
                      .num_topk = p.shape.num_topk,
                      .num_experts = p.num_local_experts * R,
                      .ranks_per_domain = G,
                      .num_domains = D,
                      .fp8 = p.shape.fp8};
  // NOTE: 2C blocks, one per SM, all resident at once (forwarders and senders wait on each other
  // across ranks): never more than the device has.
  const int num_sms = std::min(a.config.num_sms, m.num_sms);
  const int C = p.cached != nullptr ? p.cached->num_channels : md_ring_config(shape, num_sms).num_channels;
  EPCOMM_CHECK_ARG(2 * C <= m.num_sms, "config.num_sms: the handle's dispatch used ", 2 * C,
                   " blocks; this device has ", m.num_sms, " multiprocessors");
  const MdRingConfig ring = md_fit_rdma(m.md->region_bytes, shape, C, kMdDefaultStagingSlots, kMdOpDispatch);
  p.sym = MdSymmetricLayout::make(D, G, C, ring.ring_slots, ring.staging_slots, md_dispatch_slot(shape));
  const MdDomainRecord record{D, G, p.num_local_experts};
  EPCOMM_REQUIRE(
      MdDomainRecord::kOffsetBytes + sizeof(std::int32_t) * static_cast<std::size_t>(record.ints()) <=
          RegionLayout::kMailboxBytes,
      ErrorCategory::kUnsupported, "num_experts: a domain's count record of ", R, " ranks and ",
      p.num_local_experts, " local experts does not fit its ", RegionLayout::kMailboxBytes, "-byte mailbox");
  p.region = HtDispatchLayout::make(static_cast<std::size_t>(m.options.num_nvl_bytes), p.shape.row_bytes,
                                    p.shape.num_scales, p.shape.num_topk, p.shape.idx_bytes);
  if (a.num_worst_tokens > 0)
    check_rows_fit({a.num_worst_tokens}, p.region.cap_rows, p.region.bytes_per_row(),
                   "dispatch (num_worst_tokens)");
  return p;
}

// The handle's tables, allocated together on the allocation stream.
void allocate_tables(Buffer::Impl& m, const MdPlanned& p, CommScope& scope, DispatchHandle::State& h,
                     MdHandleTables& t) {
  const int G = m.domains.ranks_per_domain, D = m.domains.num_domains, R = m.num_ranks();
  const int C = p.sym.rings.num_channels;
  const auto i32 = [](std::initializer_list<std::int64_t> dims) {
    return Tensor::contiguous(nullptr, DType::kI32, dims);
  };
  std::vector<DeviceTensor> tables = DeviceTensor::empty_together(
      m.allocator,
      {i32({R, G}), i32({D, C + 1, G}), i32({D, C}), i32({1}), i32({p.num_local_experts}),
       Tensor::contiguous(nullptr, DType::kBool, {p.shape.num_tokens, R})},
      scope.alloc_stream());
  t.num_domains = D;
  t.count_matrix = tables[0];
  t.fwd_prefix = tables[1];
  t.fwd_len = tables[2];
  h.num_recv_dev = tables[3];
  h.num_recv_tokens_per_expert = tables[4];
  t.token_in_rank = tables[5];
}

void launch_notify(Buffer::Impl& m, const DispatchArgs& a, const MdPlanned& p, CommScope& scope,
                   const MdHandleTables& t, const DispatchHandle::State& h, const MdScratch& scratch) {
  MdNotifyArgs n;
  n.view = m.view;
  n.place = MdPlace{m.domains.num_domains, m.domains.domain, m.md->region};
  n.header = p.sym.header;
  n.rings = p.sym.rings;
  n.sync_only = p.cached != nullptr;
  // The blocks every rank launches: 2C (a cached dispatch's C is the handle's, whatever num_sms).
  n.signature = make_signature({.op = static_cast<std::int32_t>(OpId::kDispatch),
                                .hidden = p.shape.hidden,
                                .num_topk = p.shape.num_topk,
                                .num_blocks = 2 * p.sym.rings.num_channels,
                                .max_tokens = !n.sync_only && a.num_worst_tokens > 0 ? a.num_worst_tokens : 0,
                                .num_experts = n.sync_only ? 0 : p.shape.num_experts,
                                .flags = (p.shape.fp8 ? kSigFp8 : 0) | (n.sync_only ? kSigCached : 0)});
  n.notify_epoch = m.counter(Buffer::Impl::kNotifyEpoch);
  if (!n.sync_only) {
    n.is_token_in_rank = static_cast<const bool*>(a.is_token_in_rank.data);
    n.num_tokens_per_expert = static_cast<const std::int32_t*>(a.num_tokens_per_expert.data);
    n.num_tokens = p.shape.num_tokens;
    n.num_channels = p.sym.rings.num_channels;
    n.num_local_experts = p.num_local_experts;
    n.expert_alignment = a.expert_alignment;
    n.scan = scratch.scan;
    n.count_matrix = data_of<std::int32_t>(t.count_matrix);
    n.fwd_prefix = data_of<std::int32_t>(t.fwd_prefix);
    n.fwd_len = data_of<std::int32_t>(t.fwd_len);
    n.num_recv = data_of<std::int32_t>(h.num_recv_dev);
    n.num_recv_per_expert = data_of<std::int32_t>(h.num_recv_tokens_per_expert);
    if (a.num_worst_tokens <= 0) {
      n.host_counts = static_cast<std::int32_t*>(m.host_counts.device());
      n.host_ready = host_ready_word(m.host_counts.device());
      n.host_ready_seq = ++m.notify_calls;
    }
  }
  m.timer.begin(scope.comm(), "md-notify");
  md_kernel_hooks()->notify(n, scope.comm());
  m.timer.end(scope.comm());
}

// The handshake: the host learns what this rank receives and whether every rank of its domain's
// rows fit its region. Returns the error to raise after the kernel ran (drained), if they do not.
std::optional<Error> learn_counts(Buffer::Impl& m, CommScope& scope, const MdPlanned& p,
                                  DispatchHandle::State& h, MdHandleTables& t,
                                  std::vector<int>& per_expert_host) {
  scope.mark();
  scope.wait_for_word(host_ready_word(m.host_counts.host()), m.notify_calls);
  const int G = m.domains.ranks_per_domain;
  const MdHostCounts slots{p.num_local_experts, G};
  const auto* counts = static_cast<const std::int32_t*>(m.host_counts.host());
  h.num_recv_tokens = counts[MdHostCounts::kTotal];
  h.num_rows = h.num_recv_tokens;
  per_expert_host.assign(counts + slots.per_expert(), counts + slots.domain_totals());
  const std::vector<std::int64_t> totals(counts + slots.domain_totals(), counts + slots.ints());
  t.domain_rows = totals;
  try {
    check_rows_fit(totals, p.region.cap_rows, p.region.bytes_per_row(), "dispatch");
  } catch (const Error& e) {
    // NOTE: the other domains' ranks send rows to this domain all the same: its forwarders must
    // still consume them (drain), or those ranks would wait for credits until they time out.
    h.num_rows = 0;
    return e;
  }
  return std::nullopt;
}

// Zero-copy: the rows where they arrive in the region, viewed like the outputs.
OutputPointers region_outputs(Buffer::Impl& m, CommScope& scope, const DispatchArgs& a, const MdPlanned& p,
                              DispatchResult& out, DispatchHandle::State& h) {
  const OutputPointers dst = region_pointers(m.region.get(), p.region);
  region_views(a, p.shape, dst, out, h);
  // NOTE: the rows' source tokens are kept outside the region (copied after the kernel): combine
  // stages its rows over these bytes and reads the tokens while it does.
  h.recv_src_idx = DeviceTensor::empty(m.allocator, DType::kI32, {h.num_rows}, scope.alloc_stream());
  scope.allocations_ready();
  return dst;
}

MdDispatchArgs dispatch_args(const Buffer::Impl& m, const DispatchArgs& a, const MdPlanned& p,
                             const MdHandleTables& t, const DispatchHandle::State& h,
                             const MdScratch& scratch, const OutputPointers& dst) {
  MdDispatchArgs d;
  d.view = m.view;
  d.place = MdPlace{m.domains.num_domains, m.domains.domain, m.md->region};
  d.sym = p.sym;
  d.region = p.region;
  d.x = static_cast<const std::uint8_t*>(a.x.data);
  d.x_scales = static_cast<const float*>(a.x_scales.data);
  d.scale_stride_token = p.shape.fp8 ? a.x_scales.stride[0] : 0;
  d.scale_stride_block = p.shape.fp8 ? a.x_scales.stride[1] : 0;
  d.topk_idx = a.topk_idx.data;
  d.topk_weights = static_cast<const float*>(a.topk_weights.data);
  d.is_token_in_rank = data_of<const bool>(t.token_in_rank);
  d.num_tokens = p.shape.num_tokens;
  d.num_local_experts = p.num_local_experts;
  d.num_channels = p.sym.rings.num_channels;
  d.count_matrix = data_of<const std::int32_t>(t.count_matrix);
  d.fwd_prefix = data_of<const std::int32_t>(t.fwd_prefix);
  d.fwd_len = data_of<const std::int32_t>(t.fwd_len);
  d.num_recv = data_of<const std::int32_t>(h.num_recv_dev);
  d.streams = scratch.streams;
  d.outputs_in_region = a.zero_copy;
  d.num_rows = h.num_rows;
  d.num_worst = h.num_recv_tokens < 0;
  d.recv_x = static_cast<std::uint8_t*>(dst.x);
  d.recv_scales = p.shape.fp8 ? static_cast<float*>(dst.scales) : nullptr;
  d.recv_topk_idx = p.shape.num_topk > 0 ? dst.topk : nullptr;
  d.recv_topk_weights = p.shape.num_topk > 0 ? static_cast<float*>(dst.weights) : nullptr;
  d.recv_src_idx = static_cast<std::int32_t*>(dst.src_idx);
  return d;
}

}  // namespace

DispatchResult md_dispatch(Buffer::Impl& m, const DispatchArgs& a, const CallOptions& options) {
  EPCOMM_REQUIRE(
      md_kernel_hooks() != nullptr, ErrorCategory::kUnsupported,
      "dispatch: the multi-domain kernels are in epcomm_nvshmem, which this program does not link");
  const MdPlanned p = plan_md_dispatch(m, a);
  const bool cached = p.cached != nullptr;
  const bool worst = a.num_worst_tokens > 0;
  const int D = m.domains.num_domains, R = m.num_ranks();
  const int C = p.sym.rings.num_channels;

  CommScope scope(m, options);
  DispatchResult out;
  auto state =
      cached ? std::make_shared<DispatchHandle::State>(*p.cached) : std::make_shared<DispatchHandle::State>();
  DispatchHandle::State& h = *state;
  auto tables = cached ? std::make_shared<MdHandleTables>(*p.cached->md) : std::make_shared<MdHandleTables>();
  const MdScratch scratch = md_scratch(*m.md, R, D, C);
  if (!cached) {
    h.num_ranks = R;
    h.num_channels = C;
    h.num_tokens = p.shape.num_tokens;
    h.num_local_experts = p.num_local_experts;
    h.expert_alignment = a.expert_alignment;
    allocate_tables(m, p, scope, h, *tables);
    scope.allocations_ready();
    // A cached dispatch gets no routing: it reads this copy.
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(tables->token_in_rank.data(), a.is_token_in_rank.data,
                                      static_cast<std::size_t>(p.shape.num_tokens) * R,
                                      cudaMemcpyDeviceToDevice, scope.comm()));
  }
  launch_notify(m, a, p, scope, *tables, h, scratch);
  std::optional<Error> refused;
  if (!cached && worst) {
    h.num_recv_tokens = -1;
    h.num_rows = a.num_worst_tokens;
  } else if (!cached) {
    refused = learn_counts(m, scope, p, h, *tables, out.num_recv_tokens_per_expert);
  } else {
    check_rows_fit({h.num_rows}, p.region.cap_rows, p.region.bytes_per_row(), "cached dispatch");
  }
  const OutputPointers dst =
      a.zero_copy ? region_outputs(m, scope, a, p, out, h) : allocate_outputs(m, a, p.shape, scope, out, h);
  MdDispatchArgs d = dispatch_args(m, a, p, *tables, h, scratch, dst);
  d.drain = refused.has_value();
  EPCOMM_CUDA_CHECK(cudaMemsetAsync(scratch.streams, 0, scratch.stream_bytes, scope.comm()));
  m.timer.begin(scope.comm(), "md-dispatch");
  md_kernel_hooks()->dispatch(d, scope.comm());
  m.timer.end(scope.comm());
  if (a.zero_copy)
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(h.recv_src_idx.data(), dst.src_idx,
                                      sizeof(std::int32_t) * static_cast<std::size_t>(h.num_rows),
                                      cudaMemcpyDeviceToDevice, scope.comm()));
  if (refused) {
    // The kernel found the same counts and reported them; this rank's refusal is the host's error.
    EPCOMM_CUDA_CHECK(cudaStreamSynchronize(scope.comm()));
    m.clear_status(StatusCode::kRegionTooSmall);
    throw *refused;
  }
  h.md = std::move(tables);
  out.handle = HandleAccess::make(std::move(state));
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
