// The public size hints of multi-domain mode (epcomm/multi_domain.hpp), over md_sizes.hpp.
#include "epcomm/multi_domain.hpp"

#include "core/check.hpp"
#include "internode/md_sizes.hpp"

namespace epcomm {

namespace {

MdShape md_shape_of(const MultiDomainShape& shape) {
  EPCOMM_CHECK_ARG(
      shape.ranks_per_domain >= 1 && shape.num_ranks >= 1 && shape.num_ranks % shape.ranks_per_domain == 0,
      "num_ranks, ranks_per_domain: expected num_ranks a positive multiple of ranks_per_domain >= 1, "
      "got ",
      shape.num_ranks, ", ", shape.ranks_per_domain);
  return MdShape{.num_tokens = shape.num_tokens,
                 .hidden = shape.hidden,
                 .num_topk = shape.num_topk,
                 .num_experts = shape.num_experts,
                 .ranks_per_domain = shape.ranks_per_domain,
                 .num_domains = shape.num_ranks / shape.ranks_per_domain,
                 .fp8 = shape.fp8};
}

}  // namespace

std::int64_t multi_domain_rdma_bytes_hint(const MultiDomainShape& shape, int num_sms) {
  const MdShape md = md_shape_of(shape);
  return md_rdma_bytes_hint(md, md_ring_config(md, num_sms));
}

std::int64_t multi_domain_nvl_bytes_hint(const MultiDomainShape& shape, std::int64_t received_rows) {
  const MdShape md = md_shape_of(shape);
  EPCOMM_CHECK_ARG(received_rows >= -1 && received_rows <= std::int64_t{1} << 46,
                   "received_rows: expected 0 to 2^46, or -1 for any routing, got ", received_rows);
  return md_nvl_bytes_hint(md, received_rows == -1 ? md_worst_recv_rows(md) : received_rows);
}

}  // namespace epcomm
