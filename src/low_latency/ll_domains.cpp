#include "low_latency/ll_domains.hpp"

#include <cstdint>
#include <vector>

#include "core/check.hpp"
#include "epcomm/low_latency_limits.hpp"
#include "low_latency/ll_reach.hpp"

namespace epcomm {

static_assert(kLlMaxRanks <= kTelemetryPeers, "a low-latency view across domains indexes telemetry by rank");

int ll_requested_num_domains(int num_ranks, int requested_ranks_per_domain) {
  if (requested_ranks_per_domain <= 0 || num_ranks % requested_ranks_per_domain != 0) return 0;
  return num_ranks / requested_ranks_per_domain;
}

LlPath select_ll_path(const BufferOptions& options, int num_ranks, int ranks_per_domain,
                      const LlNvshmemHooks* hooks) {
  if (options.ll_transport == LlTransport::kNvshmem) return LlPath::kNvshmem;  // check_ll_transport
  const int num_domains = num_ranks / ranks_per_domain;
  if (num_domains <= 1) return LlPath::kIpc;
  EPCOMM_REQUIRE(hooks != nullptr, ErrorCategory::kUnsupported, "ranks_per_domain: the ", num_ranks,
                 " ranks form ", num_domains, " NVLink domains of ", ranks_per_domain,
                 "; low-latency mode across NVLink domains needs the NVSHMEM transport, which this program "
                 "does not contain (build with -DEPCOMM_WITH_NVSHMEM=ON and link epcomm_nvshmem)");
  EPCOMM_REQUIRE(!hooks->in_use(), ErrorCategory::kUnsupported, "ranks_per_domain: low-latency mode across ",
                 num_domains, " NVLink domains uses NVSHMEM, but NVSHMEM is already in use in this process (by ",
                 "another Buffer or an NvshmemTransport); NVSHMEM keeps one state per process, so destroy that ",
                 "one first");
  return LlPath::kHybrid;
}

DomainView ll_world_view(const DomainView& domain_view, int rank, int num_ranks, int ranks_per_domain,
                         LlPath path) {
  EPCOMM_REQUIRE(num_ranks >= 1 && num_ranks <= kLlMaxRanks && ranks_per_domain >= 1 &&
                     ranks_per_domain <= kMaxDomainRanks && num_ranks % ranks_per_domain == 0 && rank >= 0 &&
                     rank < num_ranks,
                 ErrorCategory::kInternal, "ll_world_view: rank ", rank, " of ", num_ranks, " in domains of ",
                 ranks_per_domain);
  DomainView v = domain_view;
  v.rank = rank;
  v.domain_rank = rank;
  v.num_domain_ranks = num_ranks;
  v.domain_base_rank = 0;
  for (void*& base : v.peer_base) base = nullptr;
  const bool hybrid = path == LlPath::kHybrid;
  v.nvl_first = hybrid ? rank - rank % ranks_per_domain : 0;
  v.nvl_ranks = hybrid ? ranks_per_domain : 0;
  return v;
}

void check_same_ll_workspace_bytes(Bootstrap& bootstrap, std::size_t bytes) {
  const auto mine = static_cast<std::uint64_t>(bytes);
  std::vector<std::uint64_t> every(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&mine, every.data(), sizeof(mine));
  for (std::size_t r = 0; r < every.size(); ++r)
    EPCOMM_REQUIRE(every[r] == mine, ErrorCategory::kInvalidArgument,
                   "low-latency options: every rank must make the same NVSHMEM workspace; rank ", r, " asks for ",
                   every[r], " bytes, rank ", bootstrap.rank(), " for ", mine,
                   " (max_tokens_per_rank, hidden, num_experts, max_topk or num_rdma_bytes differ)");
}

int map_domain_workspaces(DomainView& view, void* (*peer_pointer)(void* workspace, int pe), char* workspace) {
  for (int peer = view.nvl_first; ll_in_nvl_domain(view, peer); ++peer) {
    void*& base = view.peer_base[ll_nvl_slot(view, peer)];
    base = peer == view.domain_rank ? workspace : peer_pointer(workspace, ll_pe(view, peer));
    if (base == nullptr) return peer;
  }
  return -1;
}

Error with_peer_domain(const Error& error, const DeviceStatus& status, int ranks_per_domain) {
  if (static_cast<StatusCode>(status.code) != StatusCode::kTimeout || status.peer < 0 ||
      ranks_per_domain <= 0)
    return error;
  const int domain = status.peer / ranks_per_domain;
  const int first = domain * ranks_per_domain;
  return Error(error.category(),
               detail::concat(error.message(), "; rank ", status.peer, " is in NVLink domain ", domain,
                              " (ranks ", first, "-", first + ranks_per_domain - 1, "), rank ", status.rank,
                              " in domain ", status.rank / ranks_per_domain),
               error.file(), error.line());
}

}  // namespace epcomm
