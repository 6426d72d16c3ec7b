// Low-latency mode across NVLink domains, host side (low_latency/ll_domains.hpp): which path a
// Buffer takes for each transport and domain count, the refusals and that they come before any
// collective step, the view the kernels get (every rank, this rank's domain reached by stores),
// and the peer's domain in a timeout's message. This program never links epcomm_nvshmem, so it has
// no NVSHMEM hooks unless a test registers fake ones.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "epcomm/low_latency_limits.hpp"
#include "expect_error.hpp"
#include "ll_fakes.hpp"
#include "low_latency/ll_domains.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {
namespace {

using test::expect_error;
using test::fake_ll_hooks;
using test::fake_nvshmem_in_use;
using test::no_exchange_bootstrap;

const BufferOptions kAuto{.low_latency_mode = true};
const BufferOptions kNvshmem{.low_latency_mode = true, .ll_transport = LlTransport::kNvshmem};

TEST(LlDomains, DomainsKnownBeforeAnyExchange) {
  EXPECT_EQ(ll_requested_num_domains(4, 2), 2);
  EXPECT_EQ(ll_requested_num_domains(4, 4), 1);
  EXPECT_EQ(ll_requested_num_domains(128, 8), 16);
  EXPECT_EQ(ll_requested_num_domains(4, 0), 0);  // discovery decides
  EXPECT_EQ(ll_requested_num_domains(6, 4), 0);  // discovery refuses G = 4
}

TEST(LlDomains, PathOfEachTransportAndDomainCount) {
  fake_nvshmem_in_use() = false;
  EXPECT_EQ(select_ll_path(kAuto, 8, 8, nullptr), LlPath::kIpc);
  EXPECT_EQ(select_ll_path(kAuto, 8, 8, fake_ll_hooks()), LlPath::kIpc);
  EXPECT_EQ(select_ll_path(kAuto, 4, 2, fake_ll_hooks()), LlPath::kHybrid);
  EXPECT_EQ(select_ll_path(kAuto, 128, 64, fake_ll_hooks()), LlPath::kHybrid);
  EXPECT_EQ(select_ll_path(kAuto, 3, 1, fake_ll_hooks()), LlPath::kHybrid);
  // kNvshmem keeps "every peer by NVSHMEM", with one domain or several (its own checks come first).
  EXPECT_EQ(select_ll_path(kNvshmem, 4, 4, fake_ll_hooks()), LlPath::kNvshmem);
  EXPECT_EQ(select_ll_path(kNvshmem, 4, 2, fake_ll_hooks()), LlPath::kNvshmem);
  EXPECT_NE(std::string(to_string(LlPath::kHybrid)).find("NVSHMEM"), std::string::npos);
}

TEST(LlDomains, SeveralDomainsWithoutTheNvshmemLibraryAreUnsupported) {
  expect_error([] { select_ll_path(kAuto, 4, 2, nullptr); },
               "ranks_per_domain: the 4 ranks form 2 NVLink domains of 2; low-latency mode across NVLink "
               "domains needs the NVSHMEM transport, which this program does not contain (build with "
               "-DEPCOMM_WITH_NVSHMEM=ON and link epcomm_nvshmem)",
               ErrorCategory::kUnsupported);
  fake_nvshmem_in_use() = true;
  expect_error([] { select_ll_path(kAuto, 4, 2, fake_ll_hooks()); }, "NVSHMEM is already in use in this process",
               ErrorCategory::kUnsupported);
  fake_nvshmem_in_use() = false;
}

TEST(LlDomains, BufferRefusesRequestedDomainsBeforeAnyCollectiveStep) {
  ASSERT_EQ(ll_nvshmem_hooks(), nullptr);
  const LowLatencyOptions ll{.max_tokens_per_rank = 128, .hidden = 7168, .num_experts = 288};
  int exchanges = 0;
  // num_nvl_bytes 0: across domains the workspace would be symmetric memory, so the refusal is the
  // missing transport, not the region.
  BufferOptions options = kAuto;
  options.ranks_per_domain = 2;
  expect_error([&] { Buffer buffer(no_exchange_bootstrap(4, &exchanges), options, ll); },
               "ranks_per_domain: the 4 ranks form 2 NVLink domains of 2", ErrorCategory::kUnsupported);
  // One domain requested: the CUDA IPC path, whose region must hold the workspace.
  options.ranks_per_domain = 4;
  expect_error([&] { Buffer buffer(no_exchange_bootstrap(4, &exchanges), options, ll); },
               "num_nvl_bytes: low-latency mode", ErrorCategory::kInvalidArgument);
  EXPECT_EQ(exchanges, 0);
}

TEST(LlDomains, WorldViewCoversEveryRankAndReachesTheDomainByStores) {
  DomainView domain;
  domain.rank = 5;
  domain.domain_rank = 1;
  domain.num_domain_ranks = 2;
  domain.domain_base_rank = 4;
  domain.peer_base[0] = &domain;
  domain.peer_base[1] = &domain;
  domain.timeout_ns = 123;
  const std::uint8_t mask[8] = {};
  domain.masked = mask;
  for (const int rank : {0, 3, 5, 7}) {
    const DomainView v = ll_world_view(domain, rank, 8, 2, LlPath::kHybrid);
    EXPECT_EQ(v.rank, rank);
    EXPECT_EQ(v.domain_rank, rank);
    EXPECT_EQ(v.num_domain_ranks, 8);
    EXPECT_EQ(v.domain_base_rank, 0);
    EXPECT_EQ(v.nvl_first, rank / 2 * 2);
    EXPECT_EQ(v.nvl_ranks, 2);
    for (void* base : v.peer_base) EXPECT_EQ(base, nullptr);  // the caller maps the domain's workspaces
    EXPECT_EQ(v.timeout_ns, 123u);
    EXPECT_EQ(v.masked, mask);
  }
  const DomainView nvshmem = ll_world_view(domain, 5, 8, 2, LlPath::kNvshmem);
  EXPECT_EQ(nvshmem.nvl_ranks, 0);  // every peer by NVSHMEM
  // The largest groups: 2 domains of 64 (the low-latency bound), 16 of 8; beyond is refused.
  const DomainView big = ll_world_view(domain, 127, kLlMaxRanks, 64, LlPath::kHybrid);
  EXPECT_EQ(big.nvl_first, 64);
  EXPECT_EQ(big.nvl_ranks, 64);
  EXPECT_EQ(ll_world_view(domain, 77, 128, 8, LlPath::kHybrid).nvl_first, 72);
  expect_error([&] { ll_world_view(domain, 0, kLlMaxRanks + 2, 2, LlPath::kHybrid); }, "ll_world_view",
               ErrorCategory::kInternal);
  expect_error([&] { ll_world_view(domain, 0, 146, kMaxDomainRanks + 1, LlPath::kHybrid); }, "ll_world_view",
               ErrorCategory::kInternal);
}

DeviceStatus timeout_status(int rank, int peer) {
  DeviceStatus s{};
  s.code = static_cast<std::int32_t>(StatusCode::kTimeout);
  s.rank = rank;
  s.peer = peer;
  return s;
}

TEST(LlDomains, TimeoutNamesThePeersDomain) {
  const Error base(ErrorCategory::kTimeout, "rank 0: low-latency dispatch timed out", "f.cpp", 7);
  const Error named = with_peer_domain(base, timeout_status(0, 3), 2);
  EXPECT_EQ(named.category(), ErrorCategory::kTimeout);
  EXPECT_EQ(
      named.message(),
      "rank 0: low-latency dispatch timed out; rank 3 is in NVLink domain 1 (ranks 2-3), rank 0 in domain 0");
  EXPECT_EQ(named.line(), 7);
  EXPECT_EQ(with_peer_domain(base, timeout_status(3, 77), 8).message(),
            "rank 0: low-latency dispatch timed out; rank 77 is in NVLink domain 9 (ranks 72-79), rank 3 in "
            "domain 0");
  // Nothing to add: no peer, or not a timeout.
  EXPECT_EQ(with_peer_domain(base, timeout_status(0, -1), 2).message(), base.message());
  DeviceStatus mismatch = timeout_status(0, 3);
  mismatch.code = static_cast<std::int32_t>(StatusCode::kPeerMismatch);
  EXPECT_EQ(with_peer_domain(base, mismatch, 2).message(), base.message());
}

}  // namespace
}  // namespace epcomm
