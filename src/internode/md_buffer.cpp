#include "internode/md_buffer.hpp"

#include <vector>

#include "core/check.hpp"
#include "core/log.hpp"
#include "internode/md_args.hpp"
#include "internode/md_limits.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {

namespace checks {

void check_md_transport(const BufferOptions& options, const LlNvshmemHooks* hooks) {
  if (options.num_rdma_bytes <= 0) return;  // negative values are refused with the other options
  EPCOMM_REQUIRE(
      !options.low_latency_mode, ErrorCategory::kUnsupported,
      "num_rdma_bytes: a low-latency Buffer takes its workspace from num_nvl_bytes (or from NVSHMEM "
      "with ll_transport = LlTransport::kNvshmem); expected 0, got ",
      options.num_rdma_bytes);
  EPCOMM_REQUIRE(
      hooks != nullptr, ErrorCategory::kUnsupported, "num_rdma_bytes: ", options.num_rdma_bytes,
      " asks for the multi-domain symmetric region, which needs the NVSHMEM transport; this program "
      "does not contain it (build with -DEPCOMM_WITH_NVSHMEM=ON and link epcomm_nvshmem)");
  EPCOMM_REQUIRE(!hooks->in_use(), ErrorCategory::kUnsupported,
                 "num_rdma_bytes: NVSHMEM is already in use in this process (by another Buffer or an "
                 "NvshmemTransport); NVSHMEM keeps one state per process, so destroy that one first");
}

bool check_md_domains(const BufferOptions& options, const DomainInfo& domains) {
  const int D = domains.num_domains;
  const int G = domains.ranks_per_domain;
  if (D == 1) {
    if (options.num_rdma_bytes > 0)
      EPCOMM_LOG_INFO("num_rdma_bytes: ", options.num_rdma_bytes, " ignored: the ", G,
                      " ranks form one NVLink domain, so no row crosses between domains");
    return false;
  }
  EPCOMM_REQUIRE(
      !options.low_latency_mode, ErrorCategory::kUnsupported,
      "num_domains: high-throughput mode serves one NVLink domain when low_latency_mode is set, got ", D,
      " domains of ", G,
      " ranks (a low-latency Buffer, made with LowLatencyOptions, serves several; a "
      "high-throughput one needs low_latency_mode unset and num_rdma_bytes)");
  EPCOMM_REQUIRE(D <= kMdMaxDomains, ErrorCategory::kUnsupported, "num_domains: at most ", kMdMaxDomains,
                 " NVLink domains supported, got ", D, " domains of ", G, " ranks");
  EPCOMM_REQUIRE(!options.mask_on_timeout, ErrorCategory::kUnsupported,
                 "mask_on_timeout: a multi-domain Buffer (", D, " NVLink domains of ", G,
                 " ranks) cannot mask ranks yet: its kernels between domains do not read the mask, so a "
                 "timeout there stays; destroy the Buffer and make a new one among the survivors "
                 "(docs/reliability.md)");
  const auto header = static_cast<std::int64_t>(MdHeader::make(D, G).total_bytes);
  EPCOMM_CHECK_ARG(options.num_rdma_bytes >= header, "num_rdma_bytes: ", D, " NVLink domains of ", G,
                   " ranks need the symmetric region that rows cross domains through; expected at least ",
                   header,
                   " bytes (its fixed header; multi_domain_rdma_bytes_hint sizes the rings too), got ",
                   options.num_rdma_bytes);
  return true;
}

}  // namespace checks

namespace {
// Bytes of notify's scan, [C][R + D] int32 (the streams' states follow).
std::size_t scan_bytes(int num_ranks, int num_domains, int num_channels) {
  return align_up(sizeof(std::int32_t) * static_cast<std::size_t>(num_channels) * (num_ranks + num_domains),
                  256);
}
std::size_t stream_bytes(int num_domains, int num_channels) {
  return sizeof(MdStreamState) * static_cast<std::size_t>(num_domains - 1) * num_channels;
}
}  // namespace

MdScratch md_scratch(MdState& md, int num_ranks, int num_domains, int num_channels) {
  const std::size_t scan = scan_bytes(num_ranks, num_domains, num_channels);
  const std::size_t streams = stream_bytes(num_domains, num_channels);
  // Sized for kMdMaxChannels when the Buffer was made (a new buffer here would wait for the device).
  EPCOMM_REQUIRE(md.scratch.bytes() >= scan + streams, ErrorCategory::kInternal, "multi-domain scratch of ",
                 md.scratch.bytes(), " bytes for ", num_channels, " channels, ", scan + streams, " needed");
  char* base = md.scratch.as<char>();
  return {reinterpret_cast<std::int32_t*>(base), reinterpret_cast<MdStreamState*>(base + scan), streams};
}

std::shared_ptr<MdState> open_md_state(Bootstrap& bootstrap, const BufferOptions& options,
                                       const DomainInfo& domains, const LlNvshmemHooks& hooks) {
  // NOTE: nvshmem_malloc is collective and symmetric: a rank asking for another size would leave
  // the others inside NVSHMEM, so the sizes are compared first.
  const std::int64_t mine = options.num_rdma_bytes;
  std::vector<std::int64_t> every(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&mine, every.data(), sizeof(mine));
  for (int r = 0; r < bootstrap.size(); ++r)
    EPCOMM_CHECK_ARG(every[static_cast<std::size_t>(r)] == mine,
                     "num_rdma_bytes: every rank must pass the same value; rank ", r, " passed ",
                     every[static_cast<std::size_t>(r)], ", rank ", bootstrap.rank(), " ", mine);
  auto state = std::make_shared<MdState>();
  state->header = MdHeader::make(domains.num_domains, domains.ranks_per_domain);
  state->region_bytes = mine;
  void* region = nullptr;
  state->nvshmem = hooks.open_workspace(bootstrap, static_cast<std::size_t>(mine), &region);
  state->region = static_cast<char*>(region);
  const int R = domains.num_domains * domains.ranks_per_domain;
  state->scratch = DeviceBuffer(scan_bytes(R, domains.num_domains, kMdMaxChannels) +
                                stream_bytes(domains.num_domains, kMdMaxChannels));
  EPCOMM_LOG_INFO("multi-domain mode: ", domains.num_domains, " NVLink domains of ", domains.ranks_per_domain,
                  " ranks, ", mine, " bytes of NVSHMEM symmetric memory (header ", state->header.total_bytes,
                  " bytes)");
  return state;
}

}  // namespace epcomm
