// Buffer::combine on a multi-domain Buffer (docs/multi_domain.md, "Combine"): checks, the combine
// rings num_rdma_bytes gives, the synchronisation with the other domains' peers and the domain
// (notify without counts), this rank's received rows staged in its NVLink region, the kernel.
#include <vector>

#include "buffer/buffer_impl.hpp"
#include "core/check.hpp"
#include "core/cuda_check.hpp"
#include "core/stream_write.hpp"
#include "internode/md_args.hpp"
#include "internode/md_buffer.hpp"
#include "internode/md_handle.hpp"
#include "internode/md_sizes.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/ht_plan.hpp"
#include "intranode/op_checks.hpp"

namespace epcomm {

namespace {

struct MdCombinePlanned {
  checks::CombineShape shape;
  const DispatchHandle::State* h = nullptr;
  MdSymmetricLayout sym;
  MdCombineNvl nvl;
};

MdCombinePlanned plan_md_combine(const Buffer::Impl& m, const CombineArgs& a) {
  MdCombinePlanned p;
  const int G = m.domains.ranks_per_domain, D = m.domains.num_domains, R = m.num_ranks();
  p.shape = checks::check_combine_args(a, R);
  checks::check_inputs_outside_region(a, m.region.get(), m.region.bytes());
  p.h = &handle_state(*a.handle);
  EPCOMM_CHECK_ARG(p.h->md != nullptr,
                   "handle: made by a dispatch within one NVLink domain; this Buffer spans ", D, " domains");
  static_assert(kMdDefaultStagingSlots % kMdWarpsPerBlock == 0,
                "each forwarder warp stages in its own slots");
  const MdShape shape{.num_tokens = p.h->num_tokens,
                      .hidden = p.shape.hidden,
                      .num_topk = p.shape.num_topk,
                      .num_experts = p.h->num_local_experts * R,
                      .ranks_per_domain = G,
                      .num_domains = D};
  const int C = p.h->num_channels;
  const MdRingConfig ring = md_fit_rdma(m.md->region_bytes, shape, C, kMdDefaultStagingSlots, kMdOpCombine);
  p.sym = MdSymmetricLayout::make(D, G, C, ring.ring_slots, ring.staging_slots, md_combine_slot(shape));
  p.nvl =
      MdCombineNvl::make(static_cast<std::size_t>(m.options.num_nvl_bytes), p.shape.hidden, p.shape.num_topk);
  // Every rank of the domain checks every rank's staged rows alike, so all refuse together.
  const std::vector<std::int64_t> rows =
      p.h->md->domain_rows.empty() ? std::vector<std::int64_t>{p.h->num_rows} : p.h->md->domain_rows;
  check_rows_fit(
      rows, p.nvl.cap_rows,
      static_cast<std::size_t>(p.shape.hidden) * 2 + 4u * static_cast<std::size_t>(p.shape.num_topk) + 4u,
      "combine");
  return p;
}

void launch_sync(Buffer::Impl& m, const MdCombinePlanned& p, CommScope& scope) {
  MdNotifyArgs n;
  n.view = m.view;
  n.place = MdPlace{m.domains.num_domains, m.domains.domain, m.md->region};
  n.header = p.sym.header;
  n.rings = p.sym.rings;
  n.sync_only = true;
  n.signature = make_signature({.op = static_cast<std::int32_t>(OpId::kCombine),
                                .hidden = p.shape.hidden,
                                .num_topk = p.shape.num_topk,
                                .num_blocks = 2 * p.sym.rings.num_channels});
  n.notify_epoch = m.counter(Buffer::Impl::kNotifyEpoch);
  m.timer.begin(scope.comm(), "md-combine-sync");
  md_kernel_hooks()->notify(n, scope.comm());
  m.timer.end(scope.comm());
}

// This rank's received rows (x, weights, their source tokens) into its region, then its "staged"
// word, for the domain's forwarders and its own owner warps. NOTE: after the synchronisation: until
// then a forwarder of the previous combine may still read the region.
void stage_rows(Buffer::Impl& m, const CombineArgs& a, const MdCombinePlanned& p, cudaStream_t stream) {
  char* data = RegionLayout::data(m.region.get());
  const auto rows = static_cast<std::size_t>(p.h->num_rows);
  EPCOMM_CUDA_CHECK(cudaMemcpyAsync(data + p.nvl.x, a.x.data,
                                    rows * static_cast<std::size_t>(p.shape.hidden) * 2,
                                    cudaMemcpyDeviceToDevice, stream));
  if (p.shape.num_topk > 0)
    EPCOMM_CUDA_CHECK(cudaMemcpyAsync(data + p.nvl.weights, a.topk_weights.data,
                                      rows * 4u * static_cast<std::size_t>(p.shape.num_topk),
                                      cudaMemcpyDeviceToDevice, stream));
  EPCOMM_CUDA_CHECK(cudaMemcpyAsync(data + p.nvl.src_idx, p.h->recv_src_idx.data(), rows * 4u,
                                    cudaMemcpyDeviceToDevice, stream));
  stream_write_u64(stream, RegionLayout::progress(m.region.get(), m.domains.local_index, 1), 1);
}

}  // namespace

CombineResult md_combine(Buffer::Impl& m, const CombineArgs& a, const CallOptions& options) {
  EPCOMM_REQUIRE(md_kernel_hooks() != nullptr, ErrorCategory::kUnsupported,
                 "combine: the multi-domain kernels are in epcomm_nvshmem, which this program does not link");
  const MdCombinePlanned p = plan_md_combine(m, a);
  const int R = m.num_ranks(), D = m.domains.num_domains;
  const int C = p.sym.rings.num_channels;
  CommScope scope(m, options);
  CombineResult out;
  const auto bf16 = Tensor::contiguous(nullptr, DType::kBF16, {p.h->num_tokens, p.shape.hidden});
  std::vector<Tensor> layouts{bf16};
  if (p.shape.num_topk > 0)
    layouts.push_back(Tensor::contiguous(nullptr, DType::kF32, {p.h->num_tokens, p.shape.num_topk}));
  std::vector<DeviceTensor> outputs =
      DeviceTensor::empty_together(m.allocator, layouts, scope.alloc_stream());
  out.x = outputs[0];
  if (p.shape.num_topk > 0) out.topk_weights = outputs[1];
  scope.allocations_ready();

  const MdScratch scratch = md_scratch(*m.md, R, D, C);
  launch_sync(m, p, scope);
  stage_rows(m, a, p, scope.comm());
  EPCOMM_CUDA_CHECK(cudaMemsetAsync(scratch.streams, 0, scratch.stream_bytes, scope.comm()));
  MdCombineArgs c;
  c.view = m.view;
  c.place = MdPlace{D, m.domains.domain, m.md->region};
  c.sym = p.sym;
  c.nvl = p.nvl;
  c.num_channels = C;
  c.num_local_experts = p.h->num_local_experts;
  c.num_tokens = p.h->num_tokens;
  c.is_token_in_rank = static_cast<const bool*>(p.h->md->token_in_rank.data());
  c.count_matrix = static_cast<const std::int32_t*>(p.h->md->count_matrix.data());
  c.fwd_prefix = static_cast<const std::int32_t*>(p.h->md->fwd_prefix.data());
  c.fwd_len = static_cast<const std::int32_t*>(p.h->md->fwd_len.data());
  c.bias0 = static_cast<const std::uint16_t*>(a.bias0.data);
  c.bias1 = static_cast<const std::uint16_t*>(a.bias1.data);
  c.out = static_cast<std::uint16_t*>(out.x.data());
  c.out_weights = p.shape.num_topk > 0 ? static_cast<float*>(out.topk_weights.data()) : nullptr;
  c.streams = scratch.streams;
  m.timer.begin(scope.comm(), "md-combine");
  md_kernel_hooks()->combine(c, scope.comm());
  m.timer.end(scope.comm());
  out.event = scope.finish();
  return out;
}

}  // namespace epcomm
